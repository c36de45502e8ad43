"""``pagemill doctor``: check every dependency and say how to fix what is missing."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass

from pipeline.settings import Settings


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # ok, but a feature is off: the fix is shown


def _redis(settings: Settings) -> Check:
    import redis

    if not settings.redis_url:
        return Check("redis", True, "REDIS_URL unset: `pagemill ocr` / `pagemill serve` start an embedded Redis")
    try:
        redis.Redis.from_url(settings.redis_url, socket_timeout=5).ping()
    except redis.RedisError as exc:
        return Check("redis", False, f"{exc}", "start Redis or fix REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    return Check("redis", True, "reachable")


async def _postgres(settings: Settings) -> Check:
    from pipeline.jobs import JobStore

    if settings.database_url is None:
        return Check("postgresql", True, "DATABASE_URL unset: an embedded PostgreSQL (pgserver) is used")
    try:
        store = await JobStore.connect(settings.database_url.get_secret_value(), schema=settings.db_schema, migrate=False)
        await store.check()
        await store.aclose()
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return Check("postgresql", False, f"{type(exc).__name__}: {exc}",
                     "start PostgreSQL or fix DATABASE_URL (postgresql://user@host:5432/db)")
    return Check("postgresql", True, "reachable")


async def _pgvector(settings: Settings) -> Check:
    from pipeline.jobs import JobStore
    from pipeline.search.vectors import MISSING_REASON, pgvector_status

    if settings.database_url is None:
        return Check("pgvector", True, "DATABASE_URL unset: the embedded PostgreSQL (pgserver) has pgvector")
    try:
        store = await JobStore.connect(settings.database_url.get_secret_value(), schema=settings.db_schema, migrate=False)
    except Exception:  # noqa: BLE001 - the postgresql check reports it
        return Check("pgvector", False, "PostgreSQL is not reachable", "see the postgresql check")
    try:
        available, version = await pgvector_status(store)
    finally:
        await store.aclose()
    if version:
        return Check("pgvector", True, f"version {version}: embeddings and search by meaning work")
    wanted = "embeddings" in settings.postprocess.split(",")
    fix = "install pgvector on the PostgreSQL server (e.g. apt-get install postgresql-16-pgvector)"
    if available:
        return Check("pgvector", True, "available; created by the first migration (`pagemill migrate`)")
    return Check("pgvector", not wanted, MISSING_REASON, fix, warn=not wanted)


async def _storage(settings: Settings) -> Check:
    from pipeline.storage import build_storage

    storage = build_storage(settings)
    where = f"s3://{settings.s3_bucket}" if settings.uses_s3 else str(settings.storage_dir)
    try:
        await storage.check()
    except Exception as exc:  # noqa: BLE001
        reason = getattr(exc, "reason", str(exc))
        return Check("storage", False, f"{where}: {reason}", "check S3_* variables or PAGEMILL_DATA_DIR permissions")
    finally:
        await storage.aclose()
    return Check("storage", True, where)


def _engine(settings: Settings) -> Check:
    from pipeline.ocr import get_engine

    try:
        engine = get_engine(settings, settings.languages)
    except Exception as exc:  # noqa: BLE001
        return Check("ocr engine", False, getattr(exc, "reason", str(exc)), "see PAGEMILL_OCR_ENGINE in the README")
    return Check("ocr engine", True, f"{engine.name} ({', '.join(engine.languages)})")


def _tesseract() -> Check:
    path = shutil.which("tesseract")
    if path is None:
        return Check("tesseract", True, "not installed (only needed for PAGEMILL_OCR_ENGINE=tesseract)",
                     "apt-get install tesseract-ocr tesseract-ocr-eng")
    return Check("tesseract", True, path)


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order a newcomer would fix them."""

    async def async_checks() -> list[Check]:
        return [await _postgres(settings), await _pgvector(settings), await _storage(settings)]

    return [_redis(settings), *asyncio.run(async_checks()), _engine(settings), _tesseract()]
