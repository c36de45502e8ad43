"""Where source files and results live: one async ``Storage`` Protocol, a local-directory and an S3 adapter.

Keys are relative, slash-separated paths such as ``documents/<uuid>/source.pdf``. Bodies are
streamed: neither adapter holds a whole file in memory (S3 uploads large bodies in parts), and
every write becomes visible all at once (local: temp file + rename; S3: one PUT or a completed
multipart upload).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from pipeline.errors import BadInputError, NotFoundError, PagemillError, TransientError

if TYPE_CHECKING:
    from pipeline.settings import Settings

# Read size for downloads and local reads, bytes.
CHUNK_BYTES = 1024 * 1024
# S3 part size, bytes: bodies up to this size go up in one PUT, larger ones as parts of this size.
# S3 requires parts of at least 5 MiB (except the last) and at most 10,000 parts, so 8 MiB parts
# allow objects up to ~78 GiB while buffering at most one part in memory.
S3_PART_BYTES = 8 * 1024 * 1024
S3_MIN_PART_BYTES = 5 * 1024 * 1024
# Keys per DeleteObjects call (the S3 maximum).
S3_DELETE_BATCH = 1000
# botocore's own retries ("standard" mode: exponential backoff with jitter on throttling, 5xx
# and connection errors), counting the first attempt; timeouts in seconds.
S3_MAX_ATTEMPTS = 4
S3_CONNECT_TIMEOUT_S = 10
S3_READ_TIMEOUT_S = 60
S3_MAX_POOL_CONNECTIONS = 20
# Key limits: S3's key limit and a common file-name limit, both in UTF-8 bytes.
MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255
# Local writes are buffered to this many bytes before each (threaded) write call.
LOCAL_WRITE_BUFFER_BYTES = 1024 * 1024
# S3 error codes that mean "no such object".
_S3_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
# S3 error codes that may pass on retry, besides any 5xx status.
_S3_TRANSIENT = frozenset({"SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError",
                           "ServiceUnavailable", "Throttling", "ThrottlingException", "OperationAborted"})
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9]{1,16})?$")
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


def build_storage(settings: Settings) -> Storage:
    """S3 when S3_BUCKET is set, else a local directory under the data dir."""
    if settings.uses_s3:
        return S3Storage.from_settings(settings)
    return LocalStorage(settings.storage_dir)


# --- local directory -------------------------------------------------------------------------------


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


def _write_atomic(target: Path, data: bytes) -> None:
    fh, tmp = _open_temp(target)
    try:
        fh.write(data)
        _commit(fh, tmp, target)
    except BaseException:
        _discard(fh, tmp)
        raise


async def _read_file_chunks(path: Path) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(Path(path).open, "rb")
    try:
        while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
            yield chunk
    finally:
        fh.close()


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


def _missing(key: str) -> NotFoundError:
    return NotFoundError(f"nothing is stored under the key {key!r}; check the key or upload the file again")


# --- S3 (aiobotocore) ------------------------------------------------------------------------------


class S3Storage:
    """Objects in one S3 bucket (any S3-compatible server), keys under an optional prefix.

    The client is made on first use and reused; it belongs to the event loop it was made in.
    """

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "",
        part_bytes: int = S3_PART_BYTES,
        max_attempts: int = S3_MAX_ATTEMPTS,
    ) -> None:
        if part_bytes < S3_MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {S3_MIN_PART_BYTES} (the S3 minimum), got {part_bytes}")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if self.prefix:
            validate_key(self.prefix, prefix=True)
        self.part_bytes = part_bytes
        self._credentials = (access_key_id, secret_access_key)
        self._config = Config(
            region_name=region,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=S3_CONNECT_TIMEOUT_S,
            read_timeout=S3_READ_TIMEOUT_S,
            max_pool_connections=S3_MAX_POOL_CONNECTIONS,
            # S3-compatible servers (MinIO, Ceph, moto) are usually addressed by path, not by
            # bucket sub-domain.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            # botocore >= 1.36 adds CRC checksums (and aws-chunked trailers) to every upload by
            # default, which several S3-compatible servers reject; send them only when required.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._opening: asyncio.Lock | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> S3Storage:
        """The bucket, endpoint, region, credentials and prefix from S3_* settings."""
        if not settings.s3_bucket:
            raise ValueError("S3_BUCKET is not set")
        secret = settings.s3_secret_access_key
        return cls(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
            prefix=settings.s3_prefix,
            **options,
        )

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, prefix={self.prefix!r})"

    def _key(self, key: str, *, prefix: bool = False) -> str:
        full = self.prefix + validate_key(key, prefix=prefix)
        if len(full.encode("utf-8")) > MAX_KEY_BYTES:
            raise BadInputError(f"the storage key is longer than {MAX_KEY_BYTES} bytes with its prefix; shorten it")
        return full

    async def _s3(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is not None:
            if self._loop is not loop:
                raise RuntimeError("this S3Storage was opened in another event loop; make one per loop")
            return self._client
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._client is None:
                access_key, secret_key = self._credentials
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(
                    get_session().create_client(
                        "s3",
                        endpoint_url=self.endpoint_url,
                        region_name=self.region,
                        aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key,
                        config=self._config,
                    )
                )
                self._stack, self._loop = stack, loop
        return self._client

    async def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet."""
        client = await self._s3()
        with self._errors("checking the bucket"):
            try:
                await client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if _error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
        params: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with self._errors("creating the bucket"):
            try:
                await client.create_bucket(**params)
            except ClientError as exc:
                if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """One PUT for bodies up to ``part_bytes``, else a multipart upload holding one part in memory."""
        full = self._key(key)
        client = await self._s3()
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                while len(buffer) >= self.part_bytes:
                    if upload_id is None:
                        with self._errors("starting an upload", key):
                            created = await client.create_multipart_upload(Bucket=self.bucket, Key=full)
                        upload_id = created["UploadId"]
                    part = bytes(memoryview(buffer)[: self.part_bytes])
                    del buffer[: self.part_bytes]
                    parts.append(await self._upload_part(client, full, upload_id, len(parts) + 1, part, key))
            if upload_id is None:
                with self._errors("storing", key):
                    await client.put_object(Bucket=self.bucket, Key=full, Body=bytes(buffer))
                return size
            if buffer or not parts:
                parts.append(await self._upload_part(client, full, upload_id, len(parts) + 1, bytes(buffer), key))
            with self._errors("finishing an upload", key):
                await client.complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            if upload_id is not None:
                # Unfinished parts are billed and invisible: abort them. Best effort; a bucket
                # lifecycle rule (AbortIncompleteMultipartUpload) catches what this misses.
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
                    )
            raise
        return size

    async def _upload_part(self, client: Any, full: str, upload_id: str, number: int, body: bytes,
                           key: str) -> dict[str, Any]:
        with self._errors("uploading a part of", key):
            response = await client.upload_part(
                Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=body
            )
        return {"ETag": response["ETag"], "PartNumber": number}

    async def put_file(self, key: str, path: Path) -> int:
        """Upload a local file, in parts when it is large."""
        return await self.put_stream(key, _read_file_chunks(path))

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small body in one PUT."""
        full = self._key(key)
        client = await self._s3()
        with self._errors("storing", key):
            await client.put_object(Bucket=self.bucket, Key=full, Body=data)

    async def get_to_file(self, key: str, path: Path) -> int:
        """Stream ``key`` into ``path`` (temp file, then rename)."""
        return await _download(self, key, path)

    async def get_bytes(self, key: str) -> bytes:
        """The whole body of ``key``."""
        return b"".join([chunk async for chunk in self.iter_chunks(key)])

    async def iter_chunks(self, key: str) -> AsyncGenerator[bytes, None]:
        """The body of ``key`` as it arrives, in chunks of up to CHUNK_BYTES."""
        full = self._key(key)
        client = await self._s3()
        with self._errors("reading", key):
            response = await client.get_object(Bucket=self.bucket, Key=full)
        async with response["Body"] as body:
            while True:
                # Errors are mapped per read, not around the yield, so that an exception thrown
                # into this generator by its consumer is not mistaken for an S3 failure.
                with self._errors("reading", key):
                    chunk = await body.read(CHUNK_BYTES)
                if not chunk:
                    return
                yield chunk

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key`` (a HEAD request)."""
        full = self._key(key)
        client = await self._s3()
        try:
            with self._errors("checking", key):
                await client.head_object(Bucket=self.bucket, Key=full)
        except NotFoundError:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Remove ``key``; S3 answers the same whether it existed or not."""
        full = self._key(key)
        client = await self._s3()
        with self._errors("deleting", key):
            await client.delete_object(Bucket=self.bucket, Key=full)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``, 1000 per request."""
        full = self._key(prefix, prefix=True)
        client = await self._s3()
        removed = 0
        batch: list[dict[str, str]] = []
        with self._errors("deleting under", prefix):
            async for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", ()):
                    batch.append({"Key": item["Key"]})
                    if len(batch) == S3_DELETE_BATCH:
                        removed += await self._delete_batch(client, batch)
                        batch = []
            if batch:
                removed += await self._delete_batch(client, batch)
        return removed

    async def _delete_batch(self, client: Any, batch: list[dict[str, str]]) -> int:
        response = await client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise TransientError(
                f"S3 refused to delete {len(errors)} of {len(batch)} objects (first: {first.get('Key')!r}, "
                f"{first.get('Code')}: {first.get('Message')}); try again"
            )
        return len(batch)

    async def check(self) -> None:
        """Raise TransientError when the bucket cannot be reached (a HEAD on the bucket)."""
        client = await self._s3()
        try:
            with self._errors("checking the bucket"):
                await client.head_bucket(Bucket=self.bucket)
        except TransientError:
            raise
        except PagemillError as exc:
            # Health checks report every failure the same way; the reason says which it is.
            raise TransientError(exc.reason) from exc

    async def aclose(self) -> None:
        """Close the client and its connection pool."""
        stack, self._stack, self._client, self._loop = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()

    def _where(self) -> str:
        return self.endpoint_url or f"AWS S3 ({self.region})"

    @contextlib.contextmanager
    def _errors(self, doing: str, key: str | None = None) -> Iterator[None]:
        """Map botocore/aiohttp failures to NotFoundError, TransientError or PagemillError."""
        subject = f"{doing} {key!r}" if key is not None else doing
        try:
            yield
        except ClientError as exc:
            code = _error_code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            message = exc.response.get("Error", {}).get("Message") or str(exc)
            if code in _S3_MISSING and key is not None:
                raise _missing(key) from exc
            if code == "NoSuchBucket" or (code in _S3_MISSING and key is None):
                # A configuration problem, not a missing document: not a 404 for the user.
                raise PagemillError(
                    f"S3 bucket {self.bucket!r} does not exist at {self._where()}; create it or fix S3_BUCKET"
                ) from exc
            if status >= 500 or code in _S3_TRANSIENT:
                raise TransientError(
                    f"S3 failed while {subject} ({code}: {message}) after {self._attempts()} attempts; "
                    "it will be retried"
                ) from exc
            raise PagemillError(
                f"S3 refused {subject} in bucket {self.bucket!r} ({code}: {message}); check S3_ACCESS_KEY_ID, "
                "S3_SECRET_ACCESS_KEY and the bucket policy"
            ) from exc
        except NoCredentialsError as exc:
            raise PagemillError(
                "no S3 credentials were found; set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"
            ) from exc
        except (BotoCoreError, aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise TransientError(
                f"S3 at {self._where()} could not be reached while {subject} ({exc}); check S3_ENDPOINT_URL "
                "and the network, it will be retried"
            ) from exc

    def _attempts(self) -> int:
        retries = self._config.retries or {}
        return int(retries.get("max_attempts", 1))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# --- shared helpers --------------------------------------------------------------------------------


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
