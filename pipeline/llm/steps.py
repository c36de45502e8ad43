"""LLM steps on a document: generate one product into an artifact; close post-processing.

Aggregation moves a document that asked for post-processing straight to ``postprocessing``
(never ``completed`` first). The last step sets the status aggregation computed; a step that
fails for good ends the document ``partial_error`` with ``postprocessing failed: <kind>: <why>``,
because its OCR text and JSON stay valid and are still served.
"""

from __future__ import annotations

import uuid

import structlog

from pipeline.artifacts import Artifact, save_artifact
from pipeline.context import Context
from pipeline.errors import ConflictError
from pipeline.jobs import DocumentStatus, PageStatus
from pipeline.llm.chunking import PageText
from pipeline.llm.client import LlmClient
from pipeline.llm.products import generate

log = structlog.get_logger(__name__)

# Document states whose OCR text is complete enough to post-process.
READY_STATES = (DocumentStatus.COMPLETED, DocumentStatus.PARTIAL_ERROR, DocumentStatus.POSTPROCESSING)


async def run_product(ctx: Context, client: LlmClient, document_id: uuid.UUID, kind: str) -> Artifact:
    """Generate product ``kind`` from the document's OCR text and store it as an artifact."""
    doc = await ctx.store.get_document(document_id)
    if doc.status not in READY_STATES:
        raise ConflictError(
            f"document {doc.id} is {doc.status.value}; {kind} needs its OCR text (completed first)",
            document_id=str(doc.id),
        )
    pages = [
        PageText(p.page_no, p.text or "")
        for p in await ctx.store.list_pages(doc.id)
        if p.status is PageStatus.DONE
    ]
    product = await generate(client, kind, pages, budget_tokens=ctx.settings.llm_context_tokens)
    if kind == "metadata" and doc.filename and "." in doc.filename:
        # The suggestion keeps the file's own extension: renaming must not change what it is.
        suffix = doc.filename.rsplit(".", 1)[1].lower()
        if suffix.isalnum() and len(suffix) <= 5:
            product.data["filename_suggestion"] += f".{suffix}"
    data = {
        "kind": kind,
        "document_id": str(doc.id),
        "model": client.model,
        "pages": list(product.pages),
        "usage": product.usage.as_dict(),
        kind: product.data,
    }
    artifact = await save_artifact(ctx.store, doc.id, kind, data, tokens=product.usage.total_tokens)
    log.info("artifact.saved", document_id=str(doc.id), kind=kind, **product.usage.as_dict())
    return artifact


async def fail_postprocessing(ctx: Context, document_id: uuid.UUID, reason: str) -> bool:
    """End a post-processing document ``partial_error``: its OCR result stands, an artifact is missing.

    ``reason`` says which step failed and why; it is appended to aggregation's error (failed
    pages), if any. False when the document was not post-processing (cancelled, or already closed).
    """
    log.warning("postprocessing.failed", document_id=str(document_id), reason=reason)
    return await ctx.store.fail_postprocessing(document_id, f"postprocessing failed: {reason}")
