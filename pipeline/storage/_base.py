"""What every storage backend shares: key rules, the ``Storage`` Protocol and temp-file helpers.

A write goes to a temp file beside its target and is renamed into place after an fsync, so
readers see a complete file or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from pipeline.errors import BadInputError, NotFoundError

# Read size for downloads and local reads, bytes.
CHUNK_BYTES = 1024 * 1024
# Key limits: S3's key limit and a common file-name limit, both in UTF-8 bytes.
MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Files being written (local storage and the fetch cache): ".<name>.<32 hex>.part".
_TEMP_SUFFIX = ".part"
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.part$")


@runtime_checkable
class Storage(Protocol):
    """An object store: streamed puts and gets by key; every write is atomic."""

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the chunks under ``key`` without holding them all in memory; returns bytes written."""
        ...

    async def put_file(self, key: str, path: Path) -> int:
        """Store a local file under ``key``; returns bytes written."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small body under ``key``."""
        ...

    async def get_to_file(self, key: str, path: Path) -> int:
        """Stream ``key`` into ``path`` (temp file, then rename); returns bytes written."""
        ...

    async def get_bytes(self, key: str) -> bytes:
        """The whole body of ``key`` (for small objects such as results)."""
        ...

    def iter_chunks(self, key: str) -> AsyncGenerator[bytes, None]:
        """The body of ``key`` in chunks; NotFoundError on the first step when it is missing."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; returns how many were removed."""
        ...

    async def check(self) -> None:
        """Raise TransientError, with the reason, when the store cannot be reached or written."""
        ...

    async def aclose(self) -> None:
        """Release connections; the object is not used afterwards."""
        ...


def validate_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` when it is a safe relative key, else raise BadInputError saying why.

    With ``prefix=True`` a trailing slash is allowed (``documents/<id>/``).
    """
    if not isinstance(key, str) or not key:
        raise BadInputError("the storage key is empty; use a relative path such as documents/<id>/source.pdf")
    shown = key if len(key) <= 80 else key[:77] + "..."
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadInputError(f"the storage key {shown!r} is longer than {MAX_KEY_BYTES} bytes; use a shorter key")
    if _CONTROL_CHARS.search(key):
        raise BadInputError(f"the storage key {shown!r} contains a NUL or control character; remove it")
    if "\\" in key:
        raise BadInputError(f"the storage key {shown!r} contains a backslash; separate parts with '/'")
    if key.startswith("/"):
        raise BadInputError(f"the storage key {shown!r} is absolute; drop the leading '/'")
    segments = key.split("/")
    if prefix and len(segments) > 1 and segments[-1] == "":
        segments = segments[:-1]
    for segment in segments:
        if segment in ("", ".", ".."):
            raise BadInputError(
                f"the storage key {shown!r} has an empty, '.' or '..' part; use a plain relative path"
            )
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise BadInputError(
                f"the storage key {shown!r} has a part longer than {MAX_SEGMENT_BYTES} bytes; shorten it"
            )
    return key


def _missing(key: str) -> NotFoundError:
    return NotFoundError(f"nothing is stored under the key {key!r}; check the key or upload the file again")


# --- temp files ----------------------------------------------------------------------------------


def _open_temp(target: Path) -> tuple[IO[bytes], Path]:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
    for attempt in range(3):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            return tmp.open("xb"), tmp
        except FileNotFoundError:
            # A concurrent delete pruned the directory between mkdir and open: make it again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _commit(fh: IO[bytes], tmp: Path, target: Path) -> None:
    # fsync before the rename, so a crash cannot leave a complete-looking but empty file.
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
    os.replace(tmp, target)


def _discard(fh: IO[bytes], tmp: Path) -> None:
    fh.close()
    tmp.unlink(missing_ok=True)


async def _read_file_chunks(path: Path) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(Path(path).open, "rb")
    try:
        while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
            yield chunk
    finally:
        fh.close()


async def _download(storage: Storage, key: str, path: Path) -> int:
    """Stream ``key`` into a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    fh, tmp = await asyncio.to_thread(_open_temp, path)
    size = 0
    try:
        async with contextlib.aclosing(storage.iter_chunks(key)) as chunks:
            async for chunk in chunks:
                await asyncio.to_thread(fh.write, chunk)
                size += len(chunk)
        await asyncio.to_thread(_commit, fh, tmp, path)
    except BaseException:
        await asyncio.to_thread(_discard, fh, tmp)
        raise
    return size
