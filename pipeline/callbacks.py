"""Completion callbacks: POST a document's final status once to the URL given at upload.

The body is ``{id, status, error, links}`` (JSON); ``X-Pagemill-Signature: sha256=<hex>`` is
the HMAC-SHA256 of the raw body keyed with ``PAGEMILL_CALLBACK_SECRET``. Each (document, final
status) has one row in ``callback_deliveries``: a delivery first *claims* it for a lease, so a
redelivered message finds it delivered (or in flight) and sends nothing. Only a worker that
dies after the receiver answered but before the row was updated can cause a second POST.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from pipeline.context import Context
from pipeline.errors import BadInputError, PagemillError, TransientError
from pipeline.jobs import DocumentStatus

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Pagemill-Signature"
MAX_URL_CHARS = 2000
# A claimed delivery is left alone this long beyond the request timeout, seconds.
LEASE_MARGIN_S = 30
# Answers that mean "try again later"; any other 4xx is final.
RETRY_STATUSES = frozenset({408, 425, 429})
# Characters of a receiver's answer kept in the delivery record.
ERROR_CHARS = 300


class CallbackRejectedError(PagemillError, code="callback_rejected"):
    """The receiver refused the notification (a 4xx): retrying will not help."""


class CallbackFailedError(TransientError, code="callback_failed"):
    """The receiver could not be reached or answered 5xx: retry with backoff."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one delivery attempt did."""

    outcome: str  # delivered | already | not_final | no_callback
    status: str | None = None
    attempts: int = 0


def validate_callback_url(url: str) -> str:
    """An absolute http(s) URL with a host, at most MAX_URL_CHARS long; BadInputError otherwise."""
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise BadInputError(f"callback_url: {len(url)} characters, more than the limit of {MAX_URL_CHARS}")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise BadInputError(f"callback_url: {url[:80]!r} is not an http:// or https:// URL with a host")
    return url


def sign(body: bytes, secret: str) -> str:
    """The ``X-Pagemill-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(document_id: uuid.UUID, status: str, error: str | None) -> bytes:
    """The JSON body sent to the receiver."""
    base = f"/api/documents/{document_id}"
    links = {
        "self": base,
        "status": f"{base}/status",
        "text": f"{base}/text",
        "result.json": f"{base}/result.json",
        "artifacts": f"{base}/artifacts/{{kind}}",
        "flashcards.apkg": f"{base}/flashcards.apkg",
    }
    body = {"id": str(document_id), "status": status, "error": error, "links": links}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def set_callback_url(ctx: Context, document_id: uuid.UUID, url: str) -> None:
    """Remember where to POST the document's final status."""
    await ctx.store.set_callback_url(document_id, url)


async def wants_notification(ctx: Context, document_id: uuid.UUID) -> bool:
    """True when the document is final, has a callback URL, and that status is not delivered yet."""
    row = await ctx.store.pool.fetchrow(
        """
        SELECT d.callback_url, d.status, c.delivered_at FROM documents d
          LEFT JOIN callback_deliveries c ON c.document_id = d.id AND c.status = d.status
         WHERE d.id = $1
        """,
        document_id,
    )
    return bool(
        row is not None
        and row["callback_url"]
        and DocumentStatus(row["status"]).is_final
        and row["delivered_at"] is None
    )


async def _record(ctx: Context, document_id: uuid.UUID, status: str, **fields: Any) -> None:
    delivered = fields.get("delivered", False)
    await ctx.store.pool.execute(
        """
        UPDATE callback_deliveries
           SET claimed_until = NULL, response_status = $3, last_error = $4,
               delivered_at = CASE WHEN $5 THEN now() ELSE delivered_at END
         WHERE document_id = $1 AND status = $2
        """,
        document_id, status, fields.get("response_status"), fields.get("error"), delivered,
    )  # fmt: skip


async def deliver(ctx: Context, document_id: uuid.UUID, *, client: httpx.AsyncClient) -> Delivery:
    """POST the final status once; CallbackFailedError (retry) or CallbackRejectedError (give up)."""
    settings = ctx.settings
    row = await ctx.store.pool.fetchrow(
        "SELECT callback_url, status, error FROM documents WHERE id = $1", document_id
    )
    if row is None or not row["callback_url"]:
        return Delivery("no_callback")
    status = row["status"]
    if not DocumentStatus(status).is_final:
        return Delivery("not_final", status)
    if settings.callback_secret is None:
        raise CallbackRejectedError(
            "PAGEMILL_CALLBACK_SECRET is not set on this worker: callbacks are signed with it", document_id=str(document_id)
        )
    lease_s = settings.callback_timeout_s + LEASE_MARGIN_S
    attempts = await ctx.store.pool.fetchval(
        """
        INSERT INTO callback_deliveries AS c (document_id, status, attempts, claimed_until)
        VALUES ($1, $2, 1, now() + make_interval(secs => $3))
        ON CONFLICT (document_id, status) DO UPDATE
           SET attempts = c.attempts + 1, claimed_until = EXCLUDED.claimed_until
         WHERE c.delivered_at IS NULL AND (c.claimed_until IS NULL OR c.claimed_until < now())
        RETURNING attempts
        """,
        document_id, status, lease_s,
    )  # fmt: skip
    if attempts is None:
        return Delivery("already", status)  # delivered, or another worker is sending it now
    body = payload(document_id, status, row["error"])
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, settings.callback_secret.get_secret_value()),
        "User-Agent": "pagemill-callback",
    }
    url = row["callback_url"]
    try:
        response = await client.post(url, content=body, headers=headers, timeout=settings.callback_timeout_s)
    except httpx.HTTPError as exc:
        reason = f"POST {url[:200]} failed: {type(exc).__name__}: {str(exc)[:ERROR_CHARS]}"
        await _record(ctx, document_id, status, error=reason)
        raise CallbackFailedError(reason, document_id=str(document_id)) from exc
    if response.is_success:
        await _record(ctx, document_id, status, response_status=response.status_code, delivered=True)
        log.info("callback.delivered", document_id=str(document_id), status=status, attempts=attempts)
        return Delivery("delivered", status, attempts)
    reason = f"POST {url[:200]} answered {response.status_code}: {response.text[:ERROR_CHARS]}"
    await _record(ctx, document_id, status, response_status=response.status_code, error=reason)
    log.warning("callback.refused", document_id=str(document_id), status=status, code=response.status_code)
    if 400 <= response.status_code < 500 and response.status_code not in RETRY_STATUSES:
        raise CallbackRejectedError(reason, document_id=str(document_id))
    raise CallbackFailedError(reason, document_id=str(document_id))
