"""One suite for both Storage adapters: a local directory and S3 (moto's server over HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import tracemalloc
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import BadInputError, NotFoundError, TransientError
from pipeline.settings import ExplicitSettings, Settings
from pipeline.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    build_storage,
    fetch_cached,
    validate_key,
)
from tests.fixtures_s3 import S3_TEST_KEY, s3_client

MB = 1024 * 1024
BIG_CHUNKS = 12  # chunks of 1 MB: more than one 8 MiB S3 part


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(request.param)


@pytest.fixture
def storage(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if backend == "local":
        return LocalStorage(tmp_path / "store")
    s3_storage: S3Storage = request.getfixturevalue("s3_storage")
    return s3_storage


def run(storage: Storage, body: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``body`` in a fresh event loop and close the storage in that same loop."""

    async def main() -> Any:
        try:
            return await body()
        finally:
            await storage.aclose()

    return asyncio.run(main())


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def big_chunk(i: int) -> bytes:
    return bytes([i % 251]) * MB


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


# --- round trips -----------------------------------------------------------------------------------


def test_bytes_round_trip_overwrite_and_delete(storage: Storage) -> None:
    async def body() -> None:
        key = "documents/0b7c/result.txt"
        assert not await storage.exists(key)
        await storage.put_bytes(key, b"first")
        assert await storage.exists(key)
        assert await storage.get_bytes(key) == b"first"
        await storage.put_bytes(key, "zweite Fassung ✓".encode())
        assert (await storage.get_bytes(key)).decode() == "zweite Fassung ✓"
        await storage.delete(key)
        assert not await storage.exists(key)
        await storage.delete(key)  # deleting twice is fine

    run(storage, body)


def test_stream_and_file_round_trip(storage: Storage, tmp_path: Path) -> None:
    parts = (b"%PDF-1.7\n", b"", b"x" * 70_001, b"tail")
    data = b"".join(parts)

    async def body() -> None:
        assert await storage.put_stream("documents/a/source.pdf", chunks_of(*parts)) == len(data)
        assert await collect(storage.iter_chunks("documents/a/source.pdf")) == data

        target = tmp_path / "deep" / "dir" / "copy.pdf"
        assert await storage.get_to_file("documents/a/source.pdf", target) == len(data)
        assert target.read_bytes() == data
        assert sorted(p.name for p in target.parent.iterdir()) == ["copy.pdf"]  # no temp file left

        upload = tmp_path / "upload.bin"
        upload.write_bytes(data[::-1])
        assert await storage.put_file("documents/a/reversed.bin", upload) == len(data)
        assert await storage.get_bytes("documents/a/reversed.bin") == data[::-1]

        assert await storage.put_stream("documents/a/empty", chunks_of()) == 0
        assert await storage.get_bytes("documents/a/empty") == b""

    run(storage, body)


def test_large_stream_is_uploaded_as_it_arrives(storage: Storage, backend: str, tmp_path: Path) -> None:
    key = "documents/big/source.pdf"
    expected = hashlib.sha256(b"".join(big_chunk(i) for i in range(BIG_CHUNKS))).hexdigest()
    seen_in_flight: list[int] = []

    async def produce() -> AsyncIterator[bytes]:
        for i in range(BIG_CHUNKS):
            if backend == "s3" and i == BIG_CHUNKS - 1:
                # Before the body ends, the first part must already be on the server.
                seen_in_flight.append(await _parts_uploaded(storage, key))
            yield big_chunk(i)

    async def body() -> None:
        if backend == "local":
            tracemalloc.start()
        try:
            assert await storage.put_stream(key, produce()) == BIG_CHUNKS * MB
            if backend == "local":
                _, peak = tracemalloc.get_traced_memory()
                assert peak < 4 * MB, f"peak {peak} bytes: the stream was held in memory"
        finally:
            tracemalloc.stop()
        target = tmp_path / "big.pdf"
        assert await storage.get_to_file(key, target) == BIG_CHUNKS * MB
        assert hashlib.sha256(target.read_bytes()).hexdigest() == expected
        if backend == "s3":
            assert seen_in_flight == [1]
            assert isinstance(storage, S3Storage)
            async with s3_client(_settings_of(storage)) as client:
                head = await client.head_object(Bucket=storage.bucket, Key=key)
            assert head["ETag"].strip('"').endswith("-2")  # a completed two-part upload

    run(storage, body)


def test_failed_stream_leaves_nothing_behind(storage: Storage, backend: str, tmp_path: Path) -> None:
    key = "documents/broken/source.pdf"

    async def produce() -> AsyncIterator[bytes]:
        for i in range(10):
            yield big_chunk(i)
        raise RuntimeError("client went away")

    async def body() -> None:
        with pytest.raises(RuntimeError, match="client went away"):
            await storage.put_stream(key, produce())
        assert not await storage.exists(key)
        if isinstance(storage, S3Storage):
            async with s3_client(_settings_of(storage)) as client:
                uploads = await client.list_multipart_uploads(Bucket=storage.bucket)
            assert uploads.get("Uploads", []) == []  # the started upload was aborted
        else:
            assert [p for p in (tmp_path / "store").rglob("*") if not p.is_dir()] == []  # no temp file

    run(storage, body)


# --- missing keys, prefixes, key rules -------------------------------------------------------------


def test_missing_key_is_not_found(storage: Storage, tmp_path: Path) -> None:
    async def body() -> None:
        key = "documents/nothing/here.pdf"
        with pytest.raises(NotFoundError) as info:
            await storage.get_bytes(key)
        assert key in info.value.reason
        with pytest.raises(NotFoundError):
            await collect(storage.iter_chunks(key))
        target = tmp_path / "out" / "here.pdf"
        with pytest.raises(NotFoundError):
            await storage.get_to_file(key, target)
        assert not target.exists() and list(target.parent.iterdir()) == []
        assert not await storage.exists(key)

    run(storage, body)


def test_delete_prefix_is_a_string_prefix(storage: Storage) -> None:
    keys = ["documents/a/source.pdf", "documents/a/pages/1.json", "documents/ab/source.pdf", "other/a"]

    async def body() -> None:
        for key in keys:
            await storage.put_bytes(key, key.encode())
        assert await storage.delete_prefix("documents/a/") == 2
        assert [await storage.exists(k) for k in keys] == [False, False, True, True]
        assert await storage.delete_prefix("documents/a/") == 0
        for key in keys[:2]:
            await storage.put_bytes(key, b"again")
        assert await storage.delete_prefix("documents/a") == 3  # also documents/ab/...
        assert [await storage.exists(k) for k in keys] == [False, False, False, True]
        assert await storage.delete_prefix("nowhere/") == 0

    run(storage, body)


BAD_KEYS = [
    "",
    "/etc/passwd",
    "documents/../../etc/passwd",
    "..",
    "documents/./x",
    "documents//x",
    "documents/x/",
    "documents\\x",
    "documents/x\x00.pdf",
    "documents/x\n.pdf",
    "documents/" + "a" * 256,
    "/".join(["abcdefgh"] * 120),  # 1079 bytes
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_validate_key_refuses(key: str) -> None:
    with pytest.raises(BadInputError) as info:
        validate_key(key)
    assert info.value.reason


def test_validate_key_accepts_normal_keys() -> None:
    for key in ["documents/0b7c9a52-1f0e-4a53-8f55-0a1f4e8a2d11/source.pdf", "uploads/scan 1 (copy).pdf",
                "a", "résumé/été.png", ".hidden/x"]:
        assert validate_key(key) == key
    assert validate_key("documents/x/", prefix=True) == "documents/x/"


def test_adapters_refuse_bad_keys(storage: Storage, tmp_path: Path) -> None:
    async def body() -> None:
        for key in ["../outside.txt", "/abs", "a//b"]:
            with pytest.raises(BadInputError):
                await storage.put_bytes(key, b"x")
            with pytest.raises(BadInputError):
                await storage.get_bytes(key)
        with pytest.raises(BadInputError):
            await storage.delete_prefix("")  # never "everything"
        assert not (tmp_path / "outside.txt").exists()

    run(storage, body)


# --- fetch_cached ----------------------------------------------------------------------------------


class CountingStorage:
    """A real adapter wrapped to count downloads (every download goes through iter_chunks)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.downloads = 0

    def iter_chunks(self, key: str) -> AsyncGenerator[bytes, None]:
        self.downloads += 1
        return self.inner.iter_chunks(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_fetch_cached_downloads_once(storage: Storage, tmp_path: Path) -> None:
    data = b"%PDF-1.7\n" + bytes(range(256)) * 5000
    digest = hashlib.sha256(data).hexdigest()
    cache = tmp_path / "cache"
    counting = CountingStorage(storage)

    async def body() -> None:
        await storage.put_bytes("documents/c/source.pdf", data)
        # Ten pages of one document ask at once: one download, one file.
        paths = await asyncio.gather(
            *(fetch_cached(counting, "documents/c/source.pdf", digest, cache, ".pdf") for _ in range(10))  # type: ignore[arg-type]
        )
        assert set(paths) == {cache / f"{digest}.pdf"}
        assert counting.downloads == 1
        assert paths[0].read_bytes() == data
        # The object is gone from storage, yet the cache still answers (no storage call at all).
        await storage.delete("documents/c/source.pdf")
        again = await fetch_cached(counting, "documents/c/source.pdf", digest.upper(), cache, ".pdf")  # type: ignore[arg-type]
        assert again == paths[0] and again.read_bytes() == data
        assert counting.downloads == 1
        assert sorted(p.name for p in cache.iterdir()) == [f"{digest}.pdf"]

    run(storage, body)


def test_fetch_cached_from_several_threads_at_once(storage: Storage, tmp_path: Path) -> None:
    # Each thread has its own loop and client, like separate worker processes: they may all
    # download, but every caller must get the complete, verified file.
    data = bytes(range(256)) * 20_000
    digest = hashlib.sha256(data).hexdigest()
    cache = tmp_path / "cache"
    run(storage, lambda: storage.put_bytes("documents/t/source.tiff", data))
    start = threading.Barrier(4)

    def fetch() -> bytes:
        own = _same_store(storage)
        start.wait()
        path: Path = run(own, lambda: fetch_cached(own, "documents/t/source.tiff", digest, cache, ".tiff"))
        return path.read_bytes()

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(got == data for got in pool.map(lambda _: fetch(), range(4)))
    assert [p.name for p in cache.iterdir()] == [f"{digest}.tiff"]


def test_fetch_cached_refuses_a_hash_mismatch(storage: Storage, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    wrong = hashlib.sha256(b"what the database recorded").hexdigest()

    async def body() -> None:
        await storage.put_bytes("documents/d/source.png", b"\x89PNG\r\n\x1a\nsomething else")
        with pytest.raises(TransientError) as info:
            await fetch_cached(storage, "documents/d/source.png", wrong, cache, ".png")
        assert wrong in info.value.reason
        assert list(cache.iterdir()) == []  # neither the bad file nor a temp file stays
        with pytest.raises(NotFoundError):
            await fetch_cached(storage, "documents/d/missing.png", wrong, cache, ".png")
        with pytest.raises(ValueError, match="sha256"):
            await fetch_cached(storage, "documents/d/source.png", "../../etc/passwd", cache, ".png")
        assert list(cache.iterdir()) == []

    run(storage, body)


# --- health and construction -----------------------------------------------------------------------


def test_check_passes_on_a_working_store(storage: Storage) -> None:
    run(storage, storage.check)


def test_check_reports_unusable_stores(tmp_path: Path, s3_settings: Settings) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    local = LocalStorage(blocker / "store")
    with pytest.raises(TransientError, match="not writable"):
        run(local, local.check)

    no_bucket = S3Storage.from_settings(s3_settings.model_copy(update={"s3_bucket": "no-such-bucket-here"}))
    with pytest.raises(TransientError, match="does not exist"):
        run(no_bucket, no_bucket.check)

    # A port nothing listens on (the discard port); one attempt keeps the test quick.
    unreachable = S3Storage(bucket="any-bucket", endpoint_url="http://127.0.0.1:9", access_key_id="k",
                            secret_access_key="s", max_attempts=1)
    with pytest.raises(TransientError, match="could not be reached"):
        run(unreachable, unreachable.check)


def test_s3_prefix_is_prepended(s3_settings: Settings) -> None:
    storage = S3Storage.from_settings(s3_settings.model_copy(update={"s3_prefix": "/tenant-7/"}))

    async def body() -> None:
        await storage.put_bytes("documents/e/result.txt", b"hello")
        assert await storage.get_bytes("documents/e/result.txt") == b"hello"
        async with s3_client(s3_settings) as client:
            listed = await client.list_objects_v2(Bucket=s3_settings.s3_bucket)
        assert [item["Key"] for item in listed["Contents"]] == ["tenant-7/documents/e/result.txt"]
        assert await storage.delete_prefix("documents/") == 1

    run(storage, body)


def test_build_storage_follows_settings(tmp_path: Path, s3_settings: Settings) -> None:
    local = build_storage(ExplicitSettings(data_dir=tmp_path))
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "storage"
    s3 = build_storage(s3_settings)
    assert isinstance(s3, S3Storage) and s3.bucket == s3_settings.s3_bucket


# --- helpers ---------------------------------------------------------------------------------------


def _settings_of(storage: S3Storage) -> Settings:
    return ExplicitSettings(s3_endpoint_url=storage.endpoint_url, s3_region=storage.region,
                            s3_bucket=storage.bucket)


def _same_store(storage: Storage) -> Storage:
    if isinstance(storage, LocalStorage):
        return LocalStorage(storage.root)
    assert isinstance(storage, S3Storage)
    return S3Storage(bucket=storage.bucket, endpoint_url=storage.endpoint_url, region=storage.region,
                     access_key_id=S3_TEST_KEY, secret_access_key=S3_TEST_KEY)


async def _parts_uploaded(storage: Storage, key: str) -> int:
    assert isinstance(storage, S3Storage)
    async with s3_client(_settings_of(storage)) as client:
        uploads = (await client.list_multipart_uploads(Bucket=storage.bucket)).get("Uploads", [])
        if not uploads:
            return 0
        parts = await client.list_parts(Bucket=storage.bucket, Key=key, UploadId=uploads[0]["UploadId"])
        return len(parts.get("Parts", []))


def test_cache_prune_drops_old_files_then_the_least_recently_used(tmp_path: Path) -> None:
    import os

    from pipeline.storage import adopt, prune

    cache = tmp_path / "cache"
    now = 1_000_000.0
    made = {}
    for n, age_h in enumerate((48, 5, 3, 1)):  # hours since last use
        source = tmp_path / f"download-{n}"
        source.write_bytes(bytes([n]) * 1000)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        made[age_h] = adopt(source, digest, cache, ".pdf")
        assert not source.exists() and made[age_h].read_bytes() == bytes([n]) * 1000
        os.utime(made[age_h], (now - age_h * 3600, now - age_h * 3600))
    in_progress = cache / ".abc.pdf.123.tmp"  # a download being written is never touched
    in_progress.write_bytes(b"x" * 5000)
    removed = prune(cache, max_bytes=2000, max_age_s=24 * 3600, now=now)
    # The 48 h old file by age, then the least recently used until 2,000 bytes remain.
    assert removed == (2, 2000)
    assert sorted(p.name for p in cache.iterdir()) == sorted([made[3].name, made[1].name, in_progress.name])
    assert prune(cache, max_bytes=2000, max_age_s=24 * 3600, now=now) == (0, 0)
    assert prune(tmp_path / "missing", max_bytes=0, max_age_s=0) == (0, 0)
