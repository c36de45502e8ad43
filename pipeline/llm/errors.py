"""LLM errors, under ``pipeline.errors.PagemillError``.

    PagemillError
    ├── LlmConfigError       no API key, wrong key or unknown model: fix settings (not retried)
    ├── LlmAnswerError       the answer broke the schema twice, or was refused (not retried)
    └── TransientError
        └── LlmUnavailableError  rate limit, 5xx or timeout left after the client's own retries
"""

from __future__ import annotations

from pipeline.errors import PagemillError, TransientError


class LlmConfigError(PagemillError, http_status=503, code="llm_config"):
    """The LLM cannot be called with these settings."""


class LlmAnswerError(PagemillError, http_status=502, code="llm_answer"):
    """The model's answer was unusable after one corrective retry."""


class LlmUnavailableError(TransientError, code="llm_unavailable"):
    """The LLM server is rate limiting, failing or slow: retry later."""
