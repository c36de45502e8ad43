"""A real S3-protocol server for tests: moto's ThreadedMotoServer, one bucket per test.

``s3_endpoint`` (session) runs the server on a free port of 127.0.0.1; ``s3_settings`` gives each
test its own fresh, empty bucket (removed again afterwards); ``s3_storage`` is an ``S3Storage``
on it. The storage connects lazily and belongs to the event loop that first uses it, so use it
inside one ``asyncio.run(...)`` and ``await storage.aclose()`` at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

from pipeline.settings import ExplicitSettings, Settings
from pipeline.storage import S3Storage

S3_HOST = "127.0.0.1"
S3_TEST_REGION = "us-east-1"
S3_TEST_KEY = "testing"  # moto accepts any credentials; real ones must never reach tests


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server running in a thread for the whole session."""
    # werkzeug logs one line per request to stderr; keep failures readable.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=S3_HOST, port=0, verbose=False)  # port 0: a free one
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_settings(s3_endpoint: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings pointing at a new, empty bucket on the moto server (data dir in tmp_path)."""
    settings = ExplicitSettings(
        s3_endpoint_url=s3_endpoint,
        s3_region=S3_TEST_REGION,
        s3_access_key_id=S3_TEST_KEY,
        s3_secret_access_key=S3_TEST_KEY,
        s3_bucket=f"test-{uuid.uuid4().hex[:20]}",
        data_dir=tmp_path / "data",
    )
    asyncio.run(_create_bucket(settings))
    yield settings
    asyncio.run(_drop_bucket(settings))


@pytest.fixture
def s3_storage(s3_settings: Settings) -> S3Storage:
    """An S3Storage on this test's bucket (connects on first use; close it in the test's loop)."""
    return S3Storage.from_settings(s3_settings)


@contextlib.asynccontextmanager
async def s3_client(settings: Settings) -> AsyncIterator[Any]:
    """A plain aiobotocore client for the test bucket's server, to look behind S3Storage's back."""
    async with get_session().create_client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=S3_TEST_KEY,
        aws_secret_access_key=S3_TEST_KEY,
    ) as client:
        yield client


async def _create_bucket(settings: Settings) -> None:
    storage = S3Storage.from_settings(settings)
    try:
        await storage.ensure_bucket()
    finally:
        await storage.aclose()


async def _drop_bucket(settings: Settings) -> None:
    # moto keeps objects in memory: free them, including unfinished multipart uploads.
    async with s3_client(settings) as client:
        bucket = settings.s3_bucket
        uploads = await client.list_multipart_uploads(Bucket=bucket)
        for upload in uploads.get("Uploads", ()):
            await client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        async for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
            if keys:
                await client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        await client.delete_bucket(Bucket=bucket)
