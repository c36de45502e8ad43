"""``POST /api/documents``: stream a multipart upload to storage, record it, enqueue OCR.

The file part goes from the socket through python-multipart straight into
``pipeline.documents.ingest_upload`` (sniffed, hashed, size-limited, written to storage);
nothing holds the whole file in memory. Like S3's browser POST uploads, form fields must come
before the file part: the file is stored while it arrives, so options sent after it would
come too late to validate.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline import callbacks, documents, pdf
from pipeline.errors import BadInputError, LimitExceededError, PagemillError
from pipeline.jobs import Document, DocumentStatus
from pipeline.outputs.formats import parse_outputs
from pipeline.postprocess import parse_steps
from pipeline.settings import Settings
from pipeline.textlayer import OcrMode
from web._multipart import Event, Field, FileEnd, FileStart, boundary_of, read_parts
from web._state import AppState, app_state, links, try_enqueue
from web.errors import BadRequestError, N, UnsupportedMediaTypeError, bounded

# Room for multipart framing and form fields on top of PAGEMILL_MAX_UPLOAD_BYTES, bytes: a
# declared Content-Length beyond limit + this is refused before a byte is read.
FORM_OVERHEAD_BYTES = 1024 * 1024
# The copy kept on local disk for the readability check is written in blocks of this size, bytes.
TEE_BLOCK_BYTES = 1024 * 1024
# Render resolution bounds, dots per inch (same as PADDLEOCR_PDF_DPI).
MIN_DPI, MAX_DPI = 36, 600
MAX_LANG_HINTS = 8
MAX_FILENAME_CHARS = 255
# Answer when the row is stored but the broker failed (the reaper sends queued documents later).
QUEUE_DELAYED_MESSAGE = "stored; the queue did not answer, so the reaper will send it shortly"
_LANG = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Form fields the upload reads (besides the file part); any other is refused.
UPLOAD_FIELDS = ("lang_hints", "dpi", "min_confidence", "postprocess", "callback_url", "ocr_mode", "outputs")


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """Validated form fields."""

    lang_hints: tuple[str, ...] = ()
    dpi: int | None = None
    min_confidence: float | None = None
    postprocess: tuple[str, ...] | None = None  # None: PAGEMILL_POSTPROCESS
    callback_url: str | None = None
    ocr_mode: OcrMode | None = None  # None: PAGEMILL_OCR_MODE
    outputs: tuple[str, ...] | None = None  # None: PAGEMILL_OUTPUTS

    def document_options(self) -> dict[str, object] | None:
        """What the document row keeps in ``options`` (read by the OCR and LLM steps)."""
        options: dict[str, object] = {}
        if self.postprocess is not None:
            options["postprocess"] = list(self.postprocess)
        if self.ocr_mode is not None:
            options["ocr_mode"] = self.ocr_mode.value
        if self.outputs is not None:
            options["outputs"] = list(self.outputs)
        return options or None


def _listed(values: list[str]) -> list[str]:
    # Both "a,b" and repeated fields (lang_hints=a&lang_hints=b) are accepted.
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _number(
    fields: dict[str, list[str]], name: str, parse: Callable[[str], N], bounds: tuple[N, N], what: str
) -> N | None:
    """A numeric form field within ``bounds``, None when absent."""
    raw = _single(fields, name)
    return None if raw is None else bounded(name, raw, parse, bounds, what)


def _single(fields: dict[str, list[str]], name: str) -> str | None:
    values = [v.strip() for v in fields.get(name, []) if v.strip()]
    if len(values) > 1:
        raise BadRequestError(f"form field {name!r} was sent {len(values)} times; send it once")
    return values[0] if values else None


def parse_options(fields: dict[str, list[str]]) -> UploadOptions:
    """Validate the optional form fields; BadRequestError names the first bad one."""
    unknown = sorted(set(fields) - set(UPLOAD_FIELDS))
    if unknown:
        # A misspelt option (``dpis=300``) silently ignored would OCR with the wrong settings.
        raise BadRequestError(
            f"unknown form field {unknown[0][:40]!r}; this endpoint takes {', '.join(UPLOAD_FIELDS)} and file"
        )
    hints = [h.lower() for h in _listed(fields.get("lang_hints", []))]
    for hint in hints:
        if not _LANG.match(hint):
            raise BadRequestError(
                f"lang_hints: {hint[:40]!r} is not a language code such as 'en' or 'french'"
            )
    if len(hints) > MAX_LANG_HINTS:
        raise BadRequestError(f"lang_hints: at most {MAX_LANG_HINTS} languages, got {len(hints)}")
    dpi_value = _number(fields, "dpi", int, (MIN_DPI, MAX_DPI), "a whole number; send e.g. 180")
    conf_value = _number(fields, "min_confidence", float, (0.0, 1.0), "a number; send e.g. 0.5")
    steps = None
    if fields.get("postprocess"):
        try:
            steps = parse_steps(fields["postprocess"])
        except ValueError as exc:
            raise BadRequestError(f"postprocess: {exc}") from None
    callback = _single(fields, "callback_url")
    if callback is not None:
        try:
            callback = callbacks.validate_callback_url(callback)
        except BadInputError as exc:
            raise BadRequestError(exc.reason) from None
    mode = _single(fields, "ocr_mode")
    try:
        mode_value = None if mode is None else OcrMode(mode.lower())
    except ValueError:
        raise BadRequestError(
            f"ocr_mode: {mode[:40]!r} is not one of {', '.join(m.value for m in OcrMode)}"  # type: ignore[index]
        ) from None
    outputs = None
    if fields.get("outputs"):
        try:
            outputs = parse_outputs(_listed(fields["outputs"]))
        except ValueError as exc:
            raise BadRequestError(f"outputs: {exc}") from None
    return UploadOptions(
        tuple(dict.fromkeys(hints)), dpi_value, conf_value, steps, callback, mode_value, outputs
    )


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return  # chunked: the limit is enforced while reading
    try:
        size = int(declared)
    except ValueError:
        raise BadRequestError(f"Content-Length {declared[:40]!r} is not a number") from None
    if size > limit + FORM_OVERHEAD_BYTES:
        raise LimitExceededError(
            f"the upload is {size} bytes, more than the limit of {limit} bytes (PAGEMILL_MAX_UPLOAD_BYTES)"
        )


async def _body(request: Request) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise BadRequestError("the client disconnected before the upload was complete") from None


async def _file_bytes(parts: AsyncIterator[Event]) -> AsyncGenerator[bytes, None]:
    """The file part's bytes; then the rest of the body, which must hold no further parts."""
    async for event in parts:
        if isinstance(event, FileEnd):
            break
        if isinstance(event, bytes):
            yield event
    # Read to the end before the caller commits the file, so a bad tail still refuses the upload.
    async for event in parts:
        if isinstance(event, Field):
            raise BadRequestError(
                f"form field {event.name!r} came after the file; send form fields before the file part"
            )
        if isinstance(event, FileStart):
            raise BadRequestError("the form has more than one file; upload one document per request")


async def _tee(chunks: AsyncIterator[bytes], path: Path) -> AsyncGenerator[bytes, None]:
    """Pass ``chunks`` on while copying them to ``path`` (local disk, for the readability check)."""
    fh: IO[bytes] = await asyncio.to_thread(path.open, "wb")
    block: list[bytes] = []
    pending = 0
    try:
        async for chunk in chunks:
            block.append(chunk)
            pending += len(chunk)
            if pending >= TEE_BLOCK_BYTES:
                await asyncio.to_thread(fh.write, b"".join(block))
                block, pending = [], 0
            yield chunk
        await asyncio.to_thread(fh.write, b"".join(block))
    finally:
        await asyncio.to_thread(fh.close)


async def _check_readable(state: AppState, doc: Document, path: Path) -> None:
    """Open the stored copy with pdfium/Pillow (headers only); refuse what cannot be read."""
    s: Settings = state.settings
    try:
        await asyncio.to_thread(
            pdf.inspect_document, path, max_pages=s.max_pages, max_page_pixels=s.max_page_pixels,
            dpi=doc.dpi or s.pdf_dpi,
        )  # fmt: skip
    except BadInputError as exc:
        # Keep the row as a record of the refused upload; drop the unusable bytes.
        await state.ctx.store.set_status(doc.id, DocumentStatus.ERROR, error=exc.reason)
        await state.ctx.storage.delete(doc.source_key)
        raise


def _filename(start: FileStart) -> str | None:
    if not start.filename:
        return None
    # Old browsers send the client's full path (C:\...\scan.pdf); keep the last part.
    name = re.split(r"[\\/]", start.filename)[-1]
    # Control and format characters go: PostgreSQL text refuses NUL, ESC sequences reach
    # terminals through logs, U+202E makes "fdp.exe" read as "exe.pdf".
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf")).strip()
    name = name[:MAX_FILENAME_CHARS]
    return None if name in ("", ".", "..") else name


async def _store(state: AppState, request: Request) -> Document:
    """Stream the request into storage and insert the document row."""
    boundary = boundary_of(request.headers.get("content-type", ""))
    if boundary is None:
        raise UnsupportedMediaTypeError(
            "send the document as multipart/form-data with a file part (e.g. curl -F file=@scan.pdf)"
        )
    _check_declared_length(request, state.settings.max_upload_bytes)
    tmp_dir = state.settings.data_dir / "uploads"
    await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
    tmp = tmp_dir / f"{uuid.uuid4().hex}.upload"
    try:
        async with aclosing(read_parts(_body(request), boundary)) as parts:
            fields: dict[str, list[str]] = {}
            start: FileStart | None = None
            async for event in parts:
                if isinstance(event, Field):
                    fields.setdefault(event.name, []).append(event.value)
                elif isinstance(event, FileStart):
                    start = event
                    break
            if start is None:
                raise BadRequestError("the form has no file part; send the document as a part named 'file'")
            options = parse_options(fields)
            if options.callback_url and state.settings.callback_secret is None:
                raise BadRequestError(
                    "callback_url: this server has no PAGEMILL_CALLBACK_SECRET to sign notifications with; "
                    "ask its operator to set one, or upload without callback_url"
                )
            async with aclosing(_tee(_file_bytes(parts), tmp)) as chunks:
                doc = await documents.ingest_upload(
                    state.ctx, chunks, filename=_filename(start), lang_hints=options.lang_hints,
                    min_confidence=options.min_confidence, dpi=options.dpi,
                    options=options.document_options(),
                )  # fmt: skip
        await _check_readable(state, doc, tmp)
        if options.callback_url:
            await callbacks.set_callback_url(state.ctx, doc.id, options.callback_url)
    finally:
        await asyncio.to_thread(tmp.unlink, missing_ok=True)
    return doc


async def upload(request: Request) -> Response:
    """Upload a document (PDF or image) for OCR; answers at once, the work runs in workers.
    ---
    summary: Upload a document
    tags: [documents]
    requestBody:
      required: true
      content:
        multipart/form-data:
          schema:
            type: object
            required: [file]
            additionalProperties: false
            properties:
              lang_hints: {type: string, description: "comma list or repeated field, e.g. en,french"}
              dpi: {type: integer, minimum: 36, maximum: 600}
              min_confidence: {type: number, minimum: 0, maximum: 1}
              postprocess: {type: string, description: "summary, flashcards, quiz, diagnostics, metadata, embeddings (comma list), or none"}
              callback_url: {type: string, description: "http(s) URL that gets the final status once, signed"}
              outputs: {type: string, description: "besides text and JSON, comma list: pdf (searchable), hocr, alto, md"}
              ocr_mode:
                type: string
                enum: [auto, force, redo]
                description: "auto: read text layers, OCR the rest; force: OCR every page; redo: replace invisible OCR layers"
              file: {type: string, format: binary, description: "must be the last part"}
    responses:
      "202": {description: "accepted: {id, status, links}"}
      "400": {description: "a bad form field or no file part"}
      "413": {description: "larger than PAGEMILL_MAX_UPLOAD_BYTES, or too many pages"}
      "415": {description: "not a PDF or supported image, or not multipart/form-data"}
      "422": {description: "a PDF or image that cannot be opened"}
    """
    state = app_state(request)
    try:
        doc = await _store(state, request)
        task_id = await try_enqueue(state, doc.id)
    except PagemillError as exc:
        state.metrics.uploads.labels(outcome=exc.code).inc()
        raise
    state.metrics.uploads.labels(outcome="accepted").inc()
    state.metrics.upload_bytes.inc(doc.size_bytes or 0)
    body = {
        "id": str(doc.id),
        "document_id": str(doc.id),  # seed clients read document_id and task_id
        "task_id": task_id,
        "filename": doc.filename,
        "kind": doc.kind,
        "size_bytes": doc.size_bytes,
        "status": doc.status.value,
        "message": "queued for OCR" if task_id else QUEUE_DELAYED_MESSAGE,
        "links": links(doc.id, documents.requested_outputs(state.settings, doc)),
    }
    return JSONResponse(body, status_code=202, headers={"Location": f"/api/documents/{doc.id}"})


routes = [
    Route("/api/documents", upload, methods=["POST"], name="upload"),
    Route("/api/documents/upload", upload, methods=["POST"], name="upload_alias"),
]
