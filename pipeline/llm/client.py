"""An async client for any OpenAI-compatible server: Chat Completions with structured output, embeddings.

``LlmClient.complete`` asks for JSON matching a pydantic model (``response_format`` with a
strict JSON schema), validates the answer, and when it does not validate sends the
validation error back once so the model can correct itself; a second bad answer fails with
a readable reason. 429 and 5xx answers are retried by the ``openai`` client itself, which
waits as long as ``Retry-After`` says (exponential backoff otherwise). Calls in one process
share a semaphore; ``limiter`` adds a limit shared by every worker (an actor layer concern).
``embed`` goes through the same slots and retries, against ``/v1/embeddings``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import openai
import structlog
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, ValidationError

from pipeline.llm.errors import LlmAnswerError, LlmConfigError, LlmUnavailableError
from pipeline.llm.schemas import response_format
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T", bound=BaseModel)
# Characters of a bad answer or validation error quoted back in reasons and corrections.
QUOTE_CHARS = 600


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens used, summed over calls (from each answer's ``usage``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.calls + other.calls,
        )

    def as_dict(self) -> dict[str, int]:
        """JSON form."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "calls": self.calls,
        }


@dataclass(frozen=True, slots=True)
class Completion(Generic[T]):
    """A validated answer and the tokens it took (corrective retries included)."""

    value: T
    usage: Usage


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Vectors in the order of the texts sent, and the tokens they took."""

    vectors: list[list[float]]
    usage: Usage


class LlmClient:
    """Structured completions from one model; made once per process and passed in."""

    def __init__(
        self,
        *,
        api_key: str | None,
        model: str,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 4,
        limiter: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    ) -> None:
        if not api_key:
            raise LlmConfigError(
                "OPENAI_API_KEY is not set: set it to an OpenAI key, or point OPENAI_BASE_URL at an "
                "OpenAI-compatible server and set OPENAI_API_KEY to any value it accepts"
            )
        self.model = model
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )
        self._semaphore = asyncio.Semaphore(concurrency)
        self._limiter = limiter

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> LlmClient:
        """A client for ``OPENAI_MODEL`` at ``OPENAI_BASE_URL`` with ``OPENAI_API_KEY``."""
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        options: dict[str, Any] = {
            "api_key": key,
            "model": settings.openai_model,
            "base_url": settings.openai_base_url,
            "timeout_s": settings.llm_timeout_s,
            "max_retries": settings.llm_max_retries,
            "concurrency": settings.llm_concurrency,
        }
        return cls(**(options | overrides))

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def complete(
        self,
        schema: type[T],
        *,
        system: str,
        user: str,
        check: Callable[[T], None] | None = None,
    ) -> Completion[T]:
        """Ask for a ``schema`` instance; ``check`` may raise ValueError for answers the schema allows."""
        messages: list[dict[str, str]] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        usage = Usage()
        problem = ""
        for attempt in (1, 2):
            content, used = await self._call(schema, messages)
            usage += used
            try:
                value = schema.model_validate_json(content)
                if check is not None:
                    check(value)
                return Completion(value, usage)
            except (ValidationError, ValueError) as exc:
                problem = str(exc)[:QUOTE_CHARS]
                log.warning("llm.invalid_answer", schema=schema.__name__, attempt=attempt, problem=problem)
            messages += [
                {"role": "assistant", "content": content[:QUOTE_CHARS * 4]},
                {
                    "role": "user",
                    "content": f"That answer is invalid: {problem}\nAnswer again with JSON that matches the schema.",
                },
            ]
        raise LlmAnswerError(
            f"model {self.model} gave no valid {schema.__name__.lower()} after a corrective retry: {problem}"
        )

    @contextlib.asynccontextmanager
    async def _slot(self, model: str) -> AsyncIterator[None]:
        """One call: a slot of this process and of the shared limiter; openai errors as ours."""
        limit = self._limiter() if self._limiter is not None else contextlib.nullcontext()
        async with self._semaphore, limit:
            try:
                yield
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                raise LlmConfigError(f"the LLM server refused model {model}: {exc}") from exc
            except openai.BadRequestError as exc:
                raise LlmAnswerError(f"the LLM server rejected the request: {exc}") from exc
            except (openai.APITimeoutError, openai.APIConnectionError, openai.APIStatusError) as exc:
                raise LlmUnavailableError(f"the LLM server is unavailable after retries: {exc}") from exc

    async def embed(self, texts: Sequence[str], *, model: str, dimensions: int | None = None) -> Embeddings:
        """Vectors of ``texts`` from ``/v1/embeddings`` (one request: batch at the caller), in order."""
        async with self._slot(model):
            if dimensions:
                response = await self._client.embeddings.create(
                    model=model, input=list(texts), dimensions=dimensions, encoding_format="float"
                )
            else:
                response = await self._client.embeddings.create(model=model, input=list(texts), encoding_format="float")
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(texts):
            raise LlmAnswerError(f"embedding model {model} answered {len(data)} vectors for {len(texts)} texts")
        vectors = [list(item.embedding) for item in data]
        sizes = {len(v) for v in vectors}
        if len(sizes) != 1 or (dimensions and sizes != {dimensions}) or 0 in sizes:
            wanted = f" (asked for {dimensions})" if dimensions else ""
            raise LlmAnswerError(f"embedding model {model} answered vectors of sizes {sorted(sizes)}{wanted}")
        tokens = response.usage.prompt_tokens if response.usage is not None else 0
        used = Usage(prompt_tokens=tokens, calls=1)
        log.info("llm.embed", model=model, texts=len(texts), dims=len(vectors[0]), **used.as_dict())
        return Embeddings(vectors, used)

    async def _call(self, schema: type[BaseModel], messages: list[dict[str, str]]) -> tuple[str, Usage]:
        async with self._slot(self.model):
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=cast("list[ChatCompletionMessageParam]", messages),
                response_format=cast("ResponseFormatJSONSchema", response_format(schema)),
            )
        used = Usage(calls=1)
        if response.usage is not None:
            used = Usage(response.usage.prompt_tokens, response.usage.completion_tokens, 1)
        log.info("llm.call", model=self.model, schema=schema.__name__, **used.as_dict())
        if not response.choices:
            return "", used
        message = response.choices[0].message
        if getattr(message, "refusal", None):
            raise LlmAnswerError(f"model {self.model} refused: {message.refusal}")
        return message.content or "", used
