"""Where source files and results live: one async ``Storage`` Protocol, a local-directory and an S3 adapter.

Keys are relative, slash-separated paths such as ``documents/<uuid>/source.pdf``. Bodies are
streamed: neither adapter holds a whole file in memory (S3 uploads large bodies in parts), and
every write becomes visible all at once (local: temp file + rename; S3: one PUT or a completed
multipart upload).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.storage._base import (
    CHUNK_BYTES,
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    Storage,
    validate_key,
)
from pipeline.storage.cache import adopt, fetch_cached, prune, prune_due
from pipeline.storage.local import LOCAL_WRITE_BUFFER_BYTES, LocalStorage
from pipeline.storage.s3 import (
    S3_CONNECT_TIMEOUT_S,
    S3_DELETE_BATCH,
    S3_MAX_ATTEMPTS,
    S3_MAX_POOL_CONNECTIONS,
    S3_MIN_PART_BYTES,
    S3_PART_BYTES,
    S3_READ_TIMEOUT_S,
    S3Storage,
)

if TYPE_CHECKING:
    from pipeline.settings import Settings


__all__ = [
    "CHUNK_BYTES",
    "LOCAL_WRITE_BUFFER_BYTES",
    "MAX_KEY_BYTES",
    "MAX_SEGMENT_BYTES",
    "S3_CONNECT_TIMEOUT_S",
    "S3_DELETE_BATCH",
    "S3_MAX_ATTEMPTS",
    "S3_MAX_POOL_CONNECTIONS",
    "S3_MIN_PART_BYTES",
    "S3_PART_BYTES",
    "S3_READ_TIMEOUT_S",
    "LocalStorage",
    "S3Storage",
    "Storage",
    "adopt",
    "build_storage",
    "fetch_cached",
    "prune",
    "prune_due",
    "validate_key",
]


def build_storage(settings: Settings) -> Storage:
    """S3 when S3_BUCKET is set, else a local directory under the data dir."""
    if settings.uses_s3:
        return S3Storage.from_settings(settings)
    return LocalStorage(settings.storage_dir)
