"""Errors that carry a reason a user can read.

    PagemillError                 base; ``reason`` is shown to users, ``retryable`` drives retries
    ├── BadInputError             the document itself is unusable (never retried)
    │   ├── UnsupportedTypeError  magic bytes match no format we read          (HTTP 415)
    │   ├── UnreadableDocumentError  truncated/corrupt PDF or image            (HTTP 422)
    │   ├── EncryptedDocumentError   password-protected PDF                    (HTTP 422)
    │   └── LimitExceededError    too many pages, too many pixels, too large   (HTTP 413)
    ├── NotFoundError             unknown document id or storage key           (HTTP 404)
    ├── ConflictError             state does not allow the operation           (HTTP 409)
    ├── EngineUnavailableError    OCR engine or its models cannot be loaded    (not retried)
    └── TransientError            storage/database hiccup: retry with backoff

Retries follow one rule, from the error's class: a ``PagemillError`` whose ``retryable`` is false
is permanent (``isinstance(exc, PermanentError)``; actors pass ``throws=PermanentError``), and
everything else (TransientError, and any exception that is not ours: a bug, a dropped
connection) is retried with backoff.
"""

from __future__ import annotations


class PagemillError(Exception):
    """Base error; ``reason`` is a sentence a user can act on."""

    retryable: bool = False
    http_status: int = 500
    code: str = "internal_error"

    def __init_subclass__(
        cls, *, code: str | None = None, http_status: int | None = None, retryable: bool | None = None
    ) -> None:
        """Subclasses name their code, HTTP status and retry rule as class keywords (inherited otherwise)."""
        super().__init_subclass__()
        if code is not None:
            cls.code = code
        if http_status is not None:
            cls.http_status = http_status
        if retryable is not None:
            cls.retryable = retryable

    def __init__(self, reason: str, *, document_id: str | None = None, page_no: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.document_id = document_id
        self.page_no = page_no


class BadInputError(PagemillError, http_status=422, code="bad_input"):
    """The input cannot be processed; retrying will not help."""


class UnsupportedTypeError(BadInputError, http_status=415, code="unsupported_type"):
    """The bytes are not a PDF or an image format we read."""


class UnreadableDocumentError(BadInputError, http_status=422, code="unreadable_document"):
    """A PDF or image that is truncated or corrupt."""


class EncryptedDocumentError(BadInputError, http_status=422, code="encrypted_document"):
    """A password-protected PDF."""


class LimitExceededError(BadInputError, http_status=413, code="limit_exceeded"):
    """A configured limit (pages, pixels, bytes) was exceeded."""


class NotFoundError(PagemillError, http_status=404, code="not_found"):
    """Unknown document id or storage key."""


class ConflictError(PagemillError, http_status=409, code="conflict"):
    """The document's state does not allow the operation."""


class EngineUnavailableError(PagemillError, http_status=503, code="engine_unavailable"):
    """The OCR engine or its models cannot be loaded here."""


class TransientError(PagemillError, retryable=True, http_status=503, code="transient"):
    """A dependency failed in a way that may pass: retry with backoff."""


class _PermanentCheck(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, PagemillError) and not instance.retryable

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, PagemillError) and not subclass.retryable


class PermanentError(metaclass=_PermanentCheck):
    """Never raised: ``isinstance(exc, PermanentError)`` says retrying ``exc`` cannot help.

    True for every PagemillError whose ``retryable`` is false, so Dramatiq's ``throws=`` and our own
    code decide the same way for any error class, present or future.
    """


def is_retryable(exc: BaseException) -> bool:
    """Whether retrying may help: TransientError and anything not ours, yes; other PagemillErrors, no."""
    return not isinstance(exc, PermanentError)
