"""``S3Storage``: objects in one S3 bucket via aiobotocore, with botocore errors mapped to ours."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from pipeline.errors import BadInputError, NotFoundError, PagemillError, TransientError
from pipeline.storage._base import (
    CHUNK_BYTES,
    MAX_KEY_BYTES,
    _download,
    _missing,
    _read_file_chunks,
    validate_key,
)

if TYPE_CHECKING:
    from pipeline.settings import Settings

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
# S3 error codes that mean "no such object".
_S3_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
# S3 error codes that may pass on retry, besides any 5xx status.
_S3_TRANSIENT = frozenset({"SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError",
                           "ServiceUnavailable", "Throttling", "ThrottlingException", "OperationAborted"})


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
                    f"S3 failed while {subject} ({code}: {message}) after {self._attempts()} attempts"
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
                "and the network"
            ) from exc

    def _attempts(self) -> int:
        retries = self._config.retries or {}
        return int(retries.get("max_attempts", 1))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
