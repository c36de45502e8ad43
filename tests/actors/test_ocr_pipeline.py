"""A document through real Dramatiq workers, Redis, PostgreSQL, storage and the OCR engine."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker
from structlog.testing import capture_logs

from pipeline import documents
from pipeline.context import Context
from pipeline.jobs import DocumentStatus, PageStatus
from pipeline.ocr.base import Image, PageResult
from pipeline.ocr.onnx import OnnxEngine
from pipeline.settings import Settings
from tests import pages
from tests.fixtures_async import OpenContext
from tests.fixtures_workers import chunks_of, wait_for_document

pytestmark = pytest.mark.anyio

# Character error rate allowed per synthetic page (clean 150-dpi text; measured well under this).
MAX_PAGE_CER = 0.05


async def _ingest(ctx: Context, data: bytes, filename: str = "doc.pdf", **kwargs: object) -> uuid.UUID:
    doc = await documents.ingest_upload(ctx, chunks_of(data), filename=filename, **kwargs)  # type: ignore[arg-type]
    return doc.id


@pytest.fixture(params=["local", "s3"])
def storage_settings(request: pytest.FixtureRequest, pipeline_settings: Settings) -> Settings:
    """The test's settings with local-directory storage, or with a fresh bucket on the S3 server."""
    if request.param == "local":
        return pipeline_settings
    s3: Settings = request.getfixturevalue("s3_settings")
    fields = ("s3_endpoint_url", "s3_region", "s3_access_key_id", "s3_secret_access_key", "s3_bucket")
    return pipeline_settings.model_copy(update={f: getattr(s3, f) for f in fields})


async def test_multipage_pdf_completes_with_pages_in_order(
    broker: RedisBroker,
    start_worker: Callable[..., Worker],
    storage_settings: Settings,
    open_context: OpenContext,
) -> None:
    from actors.ocr import ocr_document

    pipeline_settings = storage_settings

    plain = pages.text_page(pages.PARAGRAPH_A)
    columns = pages.two_column_page(pages.LEFT_COLUMN, pages.RIGHT_COLUMN)
    turned = pages.rotated(pages.text_page(pages.PARAGRAPH_B), 90)
    expected = [
        "\n".join(pages.PARAGRAPH_A),
        "\n".join(pages.LEFT_COLUMN + pages.RIGHT_COLUMN),
        "\n".join(pages.PARAGRAPH_B),
    ]
    start_worker(pipeline_settings)

    ctx = await open_context(pipeline_settings)
    assert ctx.settings.uses_s3 == (pipeline_settings.s3_bucket is not None)
    doc_id = await _ingest(ctx, pages.pdf_bytes([plain, columns, turned]))
    with capture_logs() as logs:
        ocr_document.send(document_id=str(doc_id))
        doc = await wait_for_document(ctx, doc_id)
    assert doc.status is DocumentStatus.COMPLETED, doc.error
    assert doc.page_count == 3 and doc.pages_finished == 3
    text = (await ctx.storage.get_bytes(documents.result_key(doc_id, "txt"))).decode()
    got = text.split("\f")
    assert len(got) == 3
    for n, (hyp, ref) in enumerate(zip(got, expected, strict=True), 1):
        assert pages.cer(hyp, ref) <= MAX_PAGE_CER, f"page {n}: {hyp!r}"
    data = json.loads(await ctx.storage.get_bytes(documents.result_key(doc_id, "json")))
    assert [p["page_no"] for p in data["pages"]] == [1, 2, 3]
    assert data["pages"][2]["rotation"] in (90, 270)
    assert data["failed_pages"] == [] and data["engine"]
    assert all(line["box"] and 0 < line["confidence"] <= 1 for line in data["pages"][0]["lines"])
    # Every page's log line carries the document and page it is about.
    done = [e for e in logs if e["event"] == "page.done"]
    assert sorted(e["page_no"] for e in done) == [1, 2, 3]
    assert {e["document_id"] for e in done} == {str(doc_id)}


async def test_duplicate_page_message_is_not_counted_twice(
    broker: RedisBroker, start_worker: Callable[..., Worker], pipeline_settings: Settings, ctx: Context
) -> None:
    from actors.ocr import ocr_document, ocr_page

    start_worker()

    doc_id = await _ingest(ctx, pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A[:2])] * 2))
    ocr_document.send(document_id=str(doc_id))
    first = await wait_for_document(ctx, doc_id)
    assert first.status is DocumentStatus.COMPLETED
    # A redelivered page message (e.g. after a worker lost its heartbeat) arrives late.
    ocr_page.send(document_id=str(doc_id), page_no=1)
    ocr_page.send(document_id=str(doc_id), page_no=2)
    await asyncio.to_thread(broker.join, pipeline_settings.ocr_queue, timeout=60_000)
    again = await ctx.store.get_document(doc_id)
    assert again.pages_finished == 2 and again.status is DocumentStatus.COMPLETED
    assert again.finished_at == first.finished_at
    assert [p.attempts for p in await ctx.store.list_pages(doc_id)] == [1, 1]


async def test_cancel_skips_remaining_pages(
    broker: RedisBroker, start_worker: Callable[..., Worker], ctx: Context
) -> None:
    from actors.ocr import ocr_document

    start_worker(threads=1)

    doc_id = await _ingest(ctx, pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)] * 8))
    ocr_document.send(document_id=str(doc_id))
    while (await ctx.store.page_counts(doc_id))[PageStatus.DONE] < 1:
        await asyncio.sleep(0.05)
    assert await ctx.store.set_status(
        doc_id, DocumentStatus.CANCELLED, expect=[DocumentStatus.PROCESSING_CHUNKS]
    )
    while any(not p.status.is_final for p in await ctx.store.list_pages(doc_id)):
        await asyncio.sleep(0.1)
    counts = await ctx.store.page_counts(doc_id)
    assert counts[PageStatus.SKIPPED] >= 5, counts
    assert counts[PageStatus.DONE] + counts[PageStatus.SKIPPED] == 8
    doc = await ctx.store.get_document(doc_id)
    assert doc.status is DocumentStatus.CANCELLED
    assert not await ctx.storage.exists(documents.result_key(doc_id, "txt"))


@pytest.mark.parametrize(
    ("payload", "actor_name", "reason"),
    [
        (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog", "ocr_document", "PDF"),
        (pages.pdf_bytes([pages.text_page(["png, not pdf"])]), "ocr_pdf_document", None),
    ],
    ids=["truncated-pdf", "pdf-actor-accepts-pdf"],
)
async def test_bad_input_fails_the_document_with_a_reason_and_is_not_retried(
    broker: RedisBroker,
    start_worker: Callable[..., Worker],
    payload: bytes,
    actor_name: str,
    reason: str | None,
    ctx: Context,
) -> None:
    import actors.ocr

    start_worker()

    doc_id = await _ingest(ctx, payload)
    getattr(actors.ocr, actor_name).send(document_id=str(doc_id))
    doc = await wait_for_document(ctx, doc_id)
    if reason is None:
        assert doc.status is DocumentStatus.COMPLETED
    else:
        assert doc.status is DocumentStatus.ERROR
        assert doc.error and reason in doc.error
        assert doc.page_count is None  # never split


async def test_pdf_actor_refuses_an_image(
    broker: RedisBroker, start_worker: Callable[..., Worker], ctx: Context
) -> None:
    import io

    from actors.ocr import ocr_pdf_document

    start_worker()
    png = io.BytesIO()
    pages.text_page(["an image"]).save(png, format="PNG")

    doc_id = await _ingest(ctx, png.getvalue(), filename="scan.png")
    ocr_pdf_document.send(document_id=str(doc_id))
    doc = await wait_for_document(ctx, doc_id)
    assert doc.status is DocumentStatus.ERROR
    assert doc.error and "needs a PDF" in doc.error and "png" in doc.error


async def test_storage_key_producer_gets_one_document_per_message(
    broker: RedisBroker, start_worker: Callable[..., Worker], pipeline_settings: Settings, ctx: Context
) -> None:
    """Celery producers send ``storage_key`` only; redelivery must not make a second document."""
    from actors.ocr import ocr_document

    start_worker()

    await ctx.storage.put_bytes("uploads/scan.pdf", pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_B)]))
    message = ocr_document.message(storage_key="uploads/scan.pdf", lang_hints=["en"])
    broker.enqueue(message)
    doc_id = documents.document_id_for_message(message.message_id)
    while True:
        try:
            await ctx.store.get_document(doc_id)
            break
        except Exception:  # noqa: BLE001 - not created yet
            await asyncio.sleep(0.05)
    doc = await wait_for_document(ctx, doc_id)
    assert doc.status is DocumentStatus.COMPLETED
    assert doc.lang_hints == ("en",) and doc.source_key == "uploads/scan.pdf"
    broker.enqueue(message)  # the same message again
    await asyncio.to_thread(broker.join, pipeline_settings.ocr_queue, timeout=60_000)
    assert len(await ctx.store.list_documents()) == 1


async def test_a_storage_key_source_is_downloaded_once(pipeline_settings: Settings, ctx: Context) -> None:
    # Registering a producer's file reads it whole (hash, type): that copy goes into the source
    # cache, so splitting the document reads it there instead of downloading it again.
    await ctx.storage.put_bytes("uploads/once.pdf", pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)]))
    doc_id = documents.document_id_for_message("celery-task-1")
    doc = await documents.register_source(ctx, "uploads/once.pdf", document_id=doc_id)
    cached = pipeline_settings.cache_dir / f"{doc.sha256}.pdf"
    assert cached.exists()
    await ctx.storage.delete("uploads/once.pdf")  # a second download would now fail
    split = await documents.prepare_document(ctx, doc_id)
    assert split.to_ocr == [1]
    assert sorted(p.name for p in pipeline_settings.cache_dir.iterdir()) == [cached.name]


def test_echo_smoke_task(broker: RedisBroker, start_worker: Callable[..., Worker]) -> None:
    from actors.llm import echo

    assert echo.fn({"hello": "world"}) == {"hello": "world"}
    assert echo.fn(payload={"hello": "world"}) == {"hello": "world"}


class CrashOnBlankPageEngine(OnnxEngine):
    """The real onnx engine, except that it crashes on an all-black page, every time."""

    name = "crash-on-blank"

    def recognize(self, image: Image) -> PageResult:
        if float(image.mean()) < 20:
            raise RuntimeError("engine crashed: the page is solid black")
        return super().recognize(image)


@pytest.fixture
async def crashing_ctx(
    start_worker: Callable[..., Worker],
    pipeline_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    open_context: OpenContext,
) -> Context:
    """A worker whose engine crashes on solid-black pages, and a Context on its settings."""
    from pipeline.ocr import registry

    monkeypatch.setitem(registry.ENGINES, "crash-on-blank", CrashOnBlankPageEngine.from_settings)
    settings = pipeline_settings.model_copy(update={"ocr_engine": "crash-on-blank"})
    start_worker(settings)
    return await open_context(settings)


async def test_page_that_always_fails_gives_partial_error_and_keeps_other_pages(
    broker: RedisBroker, crashing_ctx: Context
) -> None:
    from actors.ocr import ocr_document

    ctx = crashing_ctx
    data = pages.pdf_bytes(
        [pages.text_page(pages.PARAGRAPH_A), pages.blank_page(0), pages.text_page(pages.PARAGRAPH_B)]
    )
    doc_id = await _ingest(ctx, data)
    ocr_document.send(document_id=str(doc_id))
    doc = await wait_for_document(ctx, doc_id)
    assert doc.status is DocumentStatus.PARTIAL_ERROR
    assert doc.error and "page 2" in doc.error and "solid black" in doc.error
    failed = await ctx.store.get_page(doc_id, 2)
    assert failed.status is PageStatus.FAILED
    assert failed.attempts == ctx.settings.max_retries + 1  # first try + 3 retries
    assert "failed after 4 attempts" in (failed.error or "")
    data_json = json.loads(await ctx.storage.get_bytes(documents.result_key(doc_id, "json")))
    assert data_json["failed_pages"] == [{"page_no": 2, "status": "failed", "reason": failed.error}]
    texts = [p["text"] for p in data_json["pages"]]
    assert pages.cer(texts[0], "\n".join(pages.PARAGRAPH_A)) <= MAX_PAGE_CER
    assert texts[1] == ""
    assert pages.cer(texts[2], "\n".join(pages.PARAGRAPH_B)) <= MAX_PAGE_CER


async def test_document_whose_every_page_fails_is_an_error(
    broker: RedisBroker, crashing_ctx: Context
) -> None:
    from actors.ocr import ocr_document

    ctx = crashing_ctx
    doc_id = await _ingest(ctx, pages.pdf_bytes([pages.blank_page(0)] * 2))
    ocr_document.send(document_id=str(doc_id))
    doc = await wait_for_document(ctx, doc_id)
    assert doc.status is DocumentStatus.ERROR
    assert doc.error and doc.error.startswith("2 of 2 pages failed")


class EngineThatWillNotLoad(OnnxEngine):
    """An engine whose model load crashes with an unexpected error, every time."""

    @classmethod
    def from_settings(cls, settings: Settings, languages: tuple[str, ...]) -> OnnxEngine:
        raise RuntimeError("model file is corrupt")


@pytest.mark.parametrize("case", ["source-deleted", "unknown-language", "engine-crashes"])
async def test_document_that_cannot_start_ends_error_with_a_reason(
    broker: RedisBroker,
    start_worker: Callable[..., Worker],
    pipeline_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    open_context: OpenContext,
) -> None:
    from actors.ocr import ocr_document
    from pipeline.ocr import registry

    monkeypatch.setitem(registry.ENGINES, "will-not-load", EngineThatWillNotLoad.from_settings)
    settings = pipeline_settings
    if case == "engine-crashes":
        settings = pipeline_settings.model_copy(update={"ocr_engine": "will-not-load"})
    start_worker(settings)
    expected = {
        "source-deleted": "nothing is stored under the key",
        "unknown-language": "klingon",
        "engine-crashes": "failed after 4 attempts: RuntimeError: model file is corrupt",
    }[case]

    ctx = await open_context(settings)
    hints = ["klingon"] if case == "unknown-language" else []
    doc_id = await _ingest(ctx, pages.pdf_bytes([pages.text_page(["hello"])]), lang_hints=hints)
    if case == "source-deleted":
        await ctx.storage.delete((await ctx.store.get_document(doc_id)).source_key)
    ocr_document.send(document_id=str(doc_id))
    doc = await wait_for_document(ctx, doc_id)
    assert doc.status is DocumentStatus.ERROR
    assert doc.error and expected in doc.error, doc.error
