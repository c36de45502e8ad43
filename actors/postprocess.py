"""Starting a document's LLM steps from any worker, without importing the LLM client.

OCR workers aggregate documents and then start the steps the upload asked for; the steps run
on the default queue (``actors.llm``). Messages are built by actor name here, so an OCR worker
process never imports ``actors.llm`` and the ``openai`` package (0.3 s and ~12 MB per process).
"""

from __future__ import annotations

import asyncio

import dramatiq

from actors import runtime
from actors.broker import current_settings
from pipeline import documents
from pipeline.jobs import DocumentStatus, parse_id

# Upload option name -> actor name (declared in actors.llm), in the order steps run (pipeline.postprocess.STEPS).
STEP_ACTORS = {
    "summary": "tasks.summarize_document",
    "flashcards": "tasks.generate_flashcards",
    "quiz": "tasks.generate_quiz",
    "diagnostics": "tasks.generate_diagnostics",
    "metadata": "tasks.generate_metadata",
    "embeddings": "tasks.embed_document",
}


async def start_pipeline(document_id: str, steps: list[str], *, finish_as: DocumentStatus) -> bool:
    """After aggregation left the document ``postprocessing``: send the steps it asked for, in order.

    The last step sets ``finish_as`` (aggregation's status). With no known step, that is done now.
    """
    wanted = [s for s in STEP_ACTORS if s in steps]
    if not wanted:
        ctx = await runtime.context()
        await documents.finish_postprocessing(ctx, parse_id(document_id), finish_as)
        return False
    queue = current_settings().default_queue
    messages = [
        dramatiq.Message(
            queue_name=queue,
            actor_name=STEP_ACTORS[kind],
            args=(),
            kwargs={"document_id": document_id, **({"finish_as": finish_as.value} if n == len(wanted) else {})},
            options={"pipe_ignore": True},
        )
        for n, kind in enumerate(wanted, 1)
    ]
    await asyncio.to_thread(dramatiq.pipeline(messages).run)
    return True
