"""Decode a Celery task message as kombu's Redis transport stores it; nothing is ever unpickled.

The envelope (kombu ``Channel._put`` / ``prepare_message``; Celery ``AMQP.as_task_v2``)::

    {"body": base64(json([args, kwargs, {"callbacks", "errbacks", "chain", "chord"}])),
     "content-type": "application/json", "content-encoding": "utf-8",
     "headers": {"lang", "task", "id", "eta", "expires", "group", "retries", "timelimit",
                 "root_id", "parent_id", "ignore_result", ...},
     "properties": {"correlation_id", "reply_to", "priority", "body_encoding": "base64",
                    "delivery_info": {"exchange", "routing_key"}, "delivery_tag", ...}}

Only protocol 2 with the json serializer is accepted. Anything else raises
:class:`RefusedMessage`, carrying the task id when it could be read so a FAILURE can be written.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# kombu's Redis priority steps and the separator of a priority list's name (kombu/transport/redis.py,
# Channel.priority_steps / Channel.sep); on Redis the lower step is served first.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"
# The only content type the bridge decodes (Celery's `task_serializer="json"`, its default since 4.0).
JSON_CONTENT_TYPE = "application/json"
# Canvas fields of the embed that the bridge cannot honour: results of a chord/chain/link are not
# fed to the next task, so running the head alone would silently break the producer's workflow.
CANVAS_FIELDS = ("callbacks", "errbacks", "chain", "chord")
# Largest message the bridge takes, bytes: tasks carry ids and storage keys, never documents, and
# each message is decoded (and re-encoded for Dramatiq) in the bridge's memory.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class RefusedMessage(Exception):
    """A message the bridge will not run; ``reason`` ends up in the Celery FAILURE result."""

    def __init__(self, reason: str, *, task_id: str | None = None, task_name: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.task_id = task_id
        self.task_name = task_name


@dataclass(frozen=True, slots=True)
class CeleryTask:
    """One decoded Celery task call."""

    task_id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    eta: datetime | None = None
    expires: datetime | None = None
    ignore_result: bool = False
    group_id: str | None = None
    parent_id: str | None = None
    # Celery's `timelimit` header: [hard, soft] seconds; the smaller one set, seconds.
    time_limit_s: float | None = None


def priority_key(queue: str, step: int) -> str:
    """The Redis list kombu uses for ``queue`` at priority ``step`` (step 0 is the queue itself)."""
    return f"{queue}{PRIORITY_SEP}{step}" if step else queue


def _when(value: Any, field: str, task_id: str | None) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise RefusedMessage(
            f"header {field!r} is not an ISO 8601 date: {value!r}", task_id=task_id
        ) from None
    # Celery's default timezone is UTC; a naive date from an old producer means UTC there too.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _time_limit(value: Any, task_id: str) -> float | None:
    if not isinstance(value, (list, tuple)):
        return None
    if any(isinstance(v, float) and not math.isfinite(v) for v in value):
        raise RefusedMessage(
            f"header 'timelimit' is {value!r}; send [hard, soft] seconds as finite numbers or null",
            task_id=task_id,
        )
    limits = [float(v) for v in value if isinstance(v, (int, float)) and v > 0]
    return min(limits) if limits else None


def _decode_body(envelope: dict[str, Any], task_id: str | None) -> Any:
    properties = envelope.get("properties") or {}
    body = envelope.get("body")
    if not isinstance(body, str):
        raise RefusedMessage("the message body is not a string", task_id=task_id)
    if (envelope.get("headers") or {}).get("compression"):
        raise RefusedMessage(
            "compressed task bodies are not supported; send without `compression`", task_id=task_id
        )
    encoding = properties.get("body_encoding")
    try:
        if encoding == "base64":
            text = base64.b64decode(body, validate=True).decode(envelope.get("content-encoding") or "utf-8")
        elif encoding in (None, ""):
            text = body
        else:
            raise RefusedMessage(f"unknown body_encoding {encoding!r}", task_id=task_id)
        return json.loads(text)
    except LookupError:  # an unknown content-encoding such as "klingon"
        raise RefusedMessage(
            f"unknown content-encoding {envelope.get('content-encoding')!r}; send utf-8", task_id=task_id
        ) from None
    except RecursionError:
        raise RefusedMessage("the message body nests too deeply to decode", task_id=task_id) from None
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise RefusedMessage(f"the message body is not valid base64 JSON ({exc})", task_id=task_id) from None


def parse_message(raw: bytes | str) -> CeleryTask:
    """Decode one raw list element into a :class:`CeleryTask`, or raise :class:`RefusedMessage`."""
    try:
        envelope = json.loads(raw)
    except (ValueError, RecursionError):
        raise RefusedMessage("the message is not JSON (not a kombu envelope)") from None
    if not isinstance(envelope, dict) or "body" not in envelope:
        raise RefusedMessage("the message is not a kombu envelope (no body)")
    headers = envelope.get("headers") or {}
    properties = envelope.get("properties") or {}
    if not isinstance(headers, dict) or not isinstance(properties, dict):
        raise RefusedMessage("the message headers/properties are not objects")
    task_id = headers.get("id") or properties.get("correlation_id")
    # Celery ids are strings; anything else would name a garbage result key.
    task_id = task_id if isinstance(task_id, str) else None
    name = headers.get("task")
    content_type = envelope.get("content-type")
    if content_type != JSON_CONTENT_TYPE:
        # Checked before anything else is read from the body: a pickle body is never decoded.
        raise RefusedMessage(
            f"content type {content_type!r} refused: the pagemill bridge accepts only {JSON_CONTENT_TYPE} "
            "(set task_serializer='json' and accept_content=['json'] on the producer); pickle is never loaded",
            task_id=task_id,
            task_name=name,
        )
    if not name or not task_id:
        raise RefusedMessage(
            "not a Celery protocol 2 message (no `task`/`id` header); set task_protocol=2 on the producer",
            task_id=task_id,
            task_name=name,
        )
    if len(raw) > MAX_MESSAGE_BYTES:
        raise RefusedMessage(
            f"the message is {len(raw)} bytes, more than the bridge's limit of {MAX_MESSAGE_BYTES} bytes; "
            "pass a storage_key or document_id instead of the data itself",
            task_id=task_id,
            task_name=name,
        )
    body = _decode_body(envelope, task_id)
    if not (isinstance(body, list) and len(body) == 3):
        raise RefusedMessage(
            "the body is not [args, kwargs, embed] (Celery protocol 2)", task_id=task_id, task_name=name
        )
    args, kwargs, embed = body
    if (
        not isinstance(args, list)
        or not isinstance(kwargs, dict)
        or not isinstance(embed, (dict, type(None)))
    ):
        raise RefusedMessage("args must be a list and kwargs an object", task_id=task_id, task_name=name)
    canvas = [field for field in CANVAS_FIELDS if (embed or {}).get(field)]
    if canvas:
        raise RefusedMessage(
            f"{name} carries canvas fields ({', '.join(canvas)}); the pagemill bridge runs single tasks only: "
            "chain/chord/link callbacks are not supported, send the tasks one by one",
            task_id=task_id,
            task_name=name,
        )
    return CeleryTask(
        task_id=task_id,
        name=str(name),
        args=args,
        kwargs=kwargs,
        eta=_when(headers.get("eta"), "eta", task_id),
        expires=_when(headers.get("expires"), "expires", task_id),
        ignore_result=bool(headers.get("ignore_result")),
        group_id=headers.get("group") or None,
        parent_id=headers.get("parent_id") or None,
        time_limit_s=_time_limit(headers.get("timelimit"), task_id),
    )
