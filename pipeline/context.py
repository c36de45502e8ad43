"""Per-process resources (job store, storage) made once and passed to every step."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import PagemillError
from pipeline.jobs import JobStore
from pipeline.settings import Settings
from pipeline.storage import Storage, build_storage


@dataclass(slots=True)
class Context:
    """What a pipeline step needs besides its arguments."""

    settings: Settings
    store: JobStore
    storage: Storage

    @classmethod
    async def open(cls, settings: Settings, *, migrate: bool = True) -> Context:
        """Connect to PostgreSQL (applying migrations) and open storage."""
        if settings.database_url is None:
            raise PagemillError(
                "DATABASE_URL is not set: point it at PostgreSQL, or run `pagemill serve` / "
                "`pagemill ocr`, which start an embedded one"
            )
        store = await JobStore.connect(
            settings.database_url.get_secret_value(),
            schema=settings.db_schema,
            max_size=settings.db_pool_max,
            migrate=migrate,
        )
        return cls(settings=settings, store=store, storage=build_storage(settings))

    async def aclose(self) -> None:
        """Close the pool and the storage client."""
        await self.store.aclose()
        await self.storage.aclose()
