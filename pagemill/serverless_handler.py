"""RunPod serverless entry point: run one pagemill task in this process and return its result.

RunPod calls ``handler({"input": {"task": "tasks.ocr_document", "payload": {...}}})``; the payload
is the kwargs a Celery producer would send. The answer is ``{"status": "ok", "result": ...}`` or
``{"status": "error", "error": "<reason>"}``; the handler never raises, so one bad job cannot take
the RunPod worker down. OCR documents run inline, page after page, through the same pipeline
steps the actors call: no queue and no other worker is involved.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
from typing import Any

import structlog

from pipeline.errors import BadInputError, PagemillError

log = structlog.get_logger(__name__)

# Actor modules whose tasks the handler can run.
ACTOR_MODULES = ("actors.ocr", "actors.llm")
# Tasks that split a document into pages: run inline here instead of fanning out.
DOCUMENT_TASKS = {"tasks.ocr_document": False, "tasks.ocr_pdf_document": True}  # name -> require_pdf

_lock = threading.Lock()
# One event loop for the life of the process, so the pipeline context (pools, engine) is reused.
_runner: asyncio.Runner | None = None


def _runner_loop() -> asyncio.Runner:
    global _runner
    with _lock:
        if _runner is None:
            import importlib

            from actors import runtime
            from actors.broker import setup_broker

            setup_broker()
            for module in ACTOR_MODULES:
                importlib.import_module(module)
            runtime.configure_logging()
            _runner = asyncio.Runner()
        return _runner


async def _ocr_document(payload: dict[str, Any], *, require_pdf: bool) -> dict[str, Any]:
    from actors import runtime
    from actors.celery_results import document_payload
    from pipeline import documents

    ctx = await runtime.context()
    if payload.get("document_id"):
        doc_id = documents.parse_document_id(payload["document_id"])
    elif payload.get("storage_key"):
        doc_id = uuid.uuid4()
        known = {"storage_key", "lang_hints", "min_confidence", "dpi"}
        await documents.register_source(
            ctx, payload["storage_key"], document_id=doc_id, lang_hints=payload.get("lang_hints") or (),
            min_confidence=payload.get("min_confidence"), dpi=payload.get("dpi"),
            options={k: v for k, v in payload.items() if k not in known},
        )  # fmt: skip
    else:
        raise BadInputError("tasks.ocr_document needs document_id or storage_key")
    split = await documents.prepare_document(ctx, doc_id, require_pdf=require_pdf)
    await documents.record_text_pages(ctx, doc_id, split)  # born-digital pages: read, not OCRed
    for page_no in split.to_ocr:
        try:
            await documents.process_page(ctx, doc_id, page_no)
        except PagemillError as exc:
            if exc.retryable:
                raise
            await documents.record_page_failure(ctx, doc_id, page_no, exc.reason)
    result = await documents.finish_document(ctx, doc_id)
    if result is None:
        doc = await ctx.store.get_document(doc_id)
        raise PagemillError(f"document {doc_id} is {doc.status.value}, not ready to aggregate")
    if result.status.value == "error":
        raise PagemillError(result.error or "every page failed", document_id=str(doc_id))
    return document_payload(doc_id, result)


def run_task(task: str, payload: Any) -> Any:
    """Run ``task`` with ``payload`` (kwargs; a list is positional args) in this process."""
    runner = _runner_loop()
    if task in DOCUMENT_TASKS:
        if not isinstance(payload, dict):
            raise BadInputError(f"{task} takes an object of kwargs as payload")
        return runner.run(_ocr_document(payload, require_pdf=DOCUMENT_TASKS[task]))
    import dramatiq
    from dramatiq.errors import ActorNotFound

    try:
        actor = dramatiq.get_broker().get_actor(task)
    except ActorNotFound:
        raise BadInputError(f"unknown task {task!r}") from None
    args, kwargs = (list(payload), {}) if isinstance(payload, list) else ((), dict(payload or {}))
    # Dramatiq wraps async actors to run on its worker event loop; call the coroutine function itself.
    fn = inspect.unwrap(actor.fn)
    if inspect.iscoroutinefunction(fn):
        return runner.run(fn(*args, **kwargs))
    return fn(*args, **kwargs)


def handler(event: dict[str, Any]) -> dict[str, Any]:
    """RunPod handler: ``{"input": {"task", "payload"}}`` -> ``{"status": "ok"|"error", ...}``."""
    job = event.get("input") if isinstance(event, dict) else None
    if not isinstance(job, dict) or not isinstance(job.get("task"), str) or not job["task"]:
        return {"status": "error", "error": 'expected {"input": {"task": "<task name>", "payload": {...}}}'}
    task: str = job["task"]
    try:
        result = run_task(task, job.get("payload") or {})
    except PagemillError as exc:
        log.warning("serverless.task_failed", task=task, reason=exc.reason)
        return {"status": "error", "error": exc.reason}
    except Exception as exc:
        log.exception("serverless.task_crashed", task=task)
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "result": result}
