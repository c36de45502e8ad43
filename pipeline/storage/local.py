"""``LocalStorage``: objects as files under a directory, written by temp file + rename."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path

from pipeline.errors import TransientError
from pipeline.storage._base import (
    _TEMP_NAME,
    CHUNK_BYTES,
    _commit,
    _discard,
    _download,
    _missing,
    _open_temp,
    _read_file_chunks,
    validate_key,
)

# Local writes are buffered to this many bytes before each (threaded) write call.
LOCAL_WRITE_BUFFER_BYTES = 1024 * 1024


class LocalStorage:
    """Objects as files under ``root``; blocking file I/O runs in worker threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the chunks under ``key`` (temp file in the same directory, then rename)."""
        target = self._path(key)
        fh, tmp = await asyncio.to_thread(_open_temp, target)
        size = 0
        buffer = bytearray()
        try:
            async for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= LOCAL_WRITE_BUFFER_BYTES:
                    await asyncio.to_thread(fh.write, buffer)
                    buffer = bytearray()
            if buffer:
                await asyncio.to_thread(fh.write, buffer)
            await asyncio.to_thread(_commit, fh, tmp, target)
        except BaseException:
            await asyncio.to_thread(_discard, fh, tmp)
            raise
        return size

    async def put_file(self, key: str, path: Path) -> int:
        """Copy a local file under ``key``."""
        return await self.put_stream(key, _read_file_chunks(path))

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``."""
        await asyncio.to_thread(_write_atomic, self._path(key), data)

    async def get_to_file(self, key: str, path: Path) -> int:
        """Copy ``key`` to ``path`` (temp file, then rename)."""
        return await _download(self, key, path)

    async def get_bytes(self, key: str) -> bytes:
        """The whole body of ``key``."""
        source = self._path(key)
        try:
            return await asyncio.to_thread(source.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise _missing(key) from exc

    async def iter_chunks(self, key: str) -> AsyncGenerator[bytes, None]:
        """The body of ``key`` in chunks of CHUNK_BYTES."""
        source = self._path(key)
        try:
            fh = await asyncio.to_thread(source.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise _missing(key) from exc
        try:
            while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
                yield chunk
        finally:
            fh.close()

    async def exists(self, key: str) -> bool:
        """Whether a file is stored under ``key``."""
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        path = self._path(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        await asyncio.to_thread(_prune_empty_dirs, path.parent, self.root)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix`` (a string prefix, as on S3)."""
        validate_key(prefix, prefix=True)
        return await asyncio.to_thread(_delete_prefix, self.root, prefix)

    async def check(self) -> None:
        """Raise TransientError when ``root`` cannot be created or written."""
        try:
            await asyncio.to_thread(_write_atomic, self.root / ".pagemill-check", b"ok")
        except OSError as exc:
            raise TransientError(
                f"local storage at {self.root} is not writable ({exc}); fix its permissions or set "
                "PAGEMILL_DATA_DIR to a writable directory"
            ) from exc

    async def aclose(self) -> None:
        """Nothing to release."""


def _write_atomic(target: Path, data: bytes) -> None:
    fh, tmp = _open_temp(target)
    try:
        fh.write(data)
        _commit(fh, tmp, target)
    except BaseException:
        _discard(fh, tmp)
        raise


def _prune_empty_dirs(directory: Path, root: Path) -> None:
    # Keep the tree tidy after deletes; stop at the root or at the first non-empty directory.
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def _delete_prefix(root: Path, prefix: str) -> int:
    # Only the directory holding the prefix's last part can contain matches.
    head, _, _ = prefix.rpartition("/")
    base = root.joinpath(*head.split("/")) if head else root
    if not base.is_dir():
        return 0
    removed = 0
    dirs: set[Path] = set()
    for dirpath, _dirnames, filenames in os.walk(base):
        for name in filenames:
            path = Path(dirpath) / name
            key = path.relative_to(root).as_posix()
            if key.startswith(prefix) and not _TEMP_NAME.match(name):
                path.unlink(missing_ok=True)
                removed += 1
                dirs.add(path.parent)
    for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        _prune_empty_dirs(directory, root)
    return removed
