"""LLM errors, under ``pipeline.errors.PagemillError``.

    PagemillError
    ├── LlmConfigError       no API key, wrong key or unknown model: fix settings (not retried)
    ├── LlmAnswerError       the answer broke the schema twice, or was refused (not retried)
    └── TransientError
        └── LlmUnavailableError  rate limit, 5xx or timeout left after the client's own retries
"""

from __future__ import annotations

from pipeline.errors import PagemillError, TransientError


class LlmConfigError(PagemillError):
    """The LLM cannot be called with these settings."""

    http_status = 503
    code = "llm_config"


class LlmAnswerError(PagemillError):
    """The model's answer was unusable after one corrective retry."""

    http_status = 502
    code = "llm_answer"


class LlmUnavailableError(TransientError):
    """The LLM server is rate limiting, failing or slow: retry later."""

    code = "llm_unavailable"
