"""``fetch_cached``: a local, hash-named and hash-checked copy of a stored file, fetched once per machine.

``adopt`` puts a file already downloaded and hashed (a Celery ``storage_key`` source) into the
cache, so it is not fetched a second time; ``prune`` keeps the cache within an age and a size
(least recently used first: a file's modification time is refreshed on every use).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import time
import weakref
from pathlib import Path

from pipeline.errors import TransientError
from pipeline.storage._base import Storage, _commit, _discard, _open_temp

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_CACHED_NAME = re.compile(r"^[0-9a-f]{64}(\.[A-Za-z0-9]{1,16})?$")
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9]{1,16})?$")

# Downloads in flight per event loop, so that pages of one document asking at once share one.
_inflight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Future[Path]]] = (
    weakref.WeakKeyDictionary()
)


async def fetch_cached(storage: Storage, key: str, sha256: str, cache_dir: Path, suffix: str) -> Path:
    """A local copy of ``key`` whose content hash is ``sha256``, downloaded once per machine.

    The file is named by its hash, so it never goes stale; it appears by an atomic rename after
    its hash was checked, so concurrent threads and processes see it complete or not at all.
    A mismatching download raises TransientError and caches nothing.
    """
    digest = sha256.lower()
    if not _SHA256_HEX.match(digest):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if not _SUFFIX.match(suffix):
        raise ValueError(f"suffix must be empty or like '.pdf', got {suffix!r}")
    target = Path(cache_dir) / f"{digest}{suffix}"
    if await asyncio.to_thread(_touch_if_present, target):
        return target
    inflight = _inflight.setdefault(asyncio.get_running_loop(), {})
    pending = inflight.get(target)
    if pending is not None:
        # shield: one waiter being cancelled must not cancel the download the others share.
        return await asyncio.shield(pending)
    task = asyncio.ensure_future(_fetch_verified(storage, key, digest, target))
    inflight[target] = task
    task.add_done_callback(lambda done: _forget(inflight, target, done))
    return await asyncio.shield(task)


def _forget(inflight: dict[Path, asyncio.Future[Path]], target: Path, done: asyncio.Future[Path]) -> None:
    inflight.pop(target, None)
    if not done.cancelled():
        done.exception()  # retrieved here, so a failure nobody awaited any more is not logged as lost


def _touch_if_present(path: Path) -> bool:
    # Refresh the modification time on use, so a cache purge can drop the least recently used.
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


async def _fetch_verified(storage: Storage, key: str, digest: str, target: Path) -> Path:
    fh, tmp = await asyncio.to_thread(_open_temp, target)
    hasher = hashlib.sha256()
    size = 0
    try:
        async with contextlib.aclosing(storage.iter_chunks(key)) as chunks:
            async for chunk in chunks:
                hasher.update(chunk)
                size += len(chunk)
                await asyncio.to_thread(fh.write, chunk)
        if hasher.hexdigest() != digest:
            raise TransientError(
                f"the download of {key!r} ({size} bytes) has SHA-256 {hasher.hexdigest()}, not the recorded "
                f"{digest}; the stored file changed or the transfer was damaged, it will be retried"
            )
        await asyncio.to_thread(_commit, fh, tmp, target)
    except BaseException:
        await asyncio.to_thread(_discard, fh, tmp)
        raise
    return target


def adopt(path: Path, sha256: str, cache_dir: Path, suffix: str) -> Path:
    """Move ``path`` (content hash ``sha256``, checked by the caller) into the cache; its new path."""
    target = Path(cache_dir) / f"{sha256.lower()}{suffix}"
    if not _touch_if_present(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)  # atomic: readers see the whole file or none
    return target


def prune(cache_dir: Path, *, max_bytes: int, max_age_s: float, now: float | None = None) -> tuple[int, int]:
    """Drop cached files unused for ``max_age_s``, then the least recently used over ``max_bytes``.

    Only complete cached files (hash-named) are considered, never downloads in progress. A file
    removed while a reader has it open stays readable to that reader (POSIX). Returns (files, bytes).
    """
    now = time.time() if now is None else now
    entries = []
    try:
        with os.scandir(cache_dir) as listing:
            for entry in listing:
                if _CACHED_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    entries.append((stat.st_mtime, stat.st_size, Path(entry.path)))
    except FileNotFoundError:
        return 0, 0
    entries.sort()  # least recently used first
    total = sum(size for _, size, _ in entries)
    removed = freed = 0
    for mtime, size, path in entries:
        if now - mtime <= max_age_s and total <= max_bytes:
            break
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
            freed += size
        total -= size
    return removed, freed


# When each cache directory was last found due for pruning in this process (monotonic s).
_last_pruned: dict[Path, float] = {}


def prune_due(cache_dir: Path, *, every_s: float = 600.0) -> bool:
    """True at most once per ``every_s`` per directory and process: workers prune as they use it.

    Only a clock read, so callers on a hot path ask this before sending ``prune`` to a thread.
    """
    now = time.monotonic()
    if now - _last_pruned.get(Path(cache_dir), -every_s) < every_s:
        return False
    _last_pruned[Path(cache_dir)] = now
    return True
