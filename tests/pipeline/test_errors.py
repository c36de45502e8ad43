"""One retry rule, from the error's class: PagemillErrors that are not retryable are permanent."""

from __future__ import annotations

import pytest
from dramatiq.brokers.redis import RedisBroker

from pipeline.callbacks import CallbackFailedError, CallbackRejectedError
from pipeline.errors import (
    BadInputError,
    ConflictError,
    EngineUnavailableError,
    LimitExceededError,
    NotFoundError,
    PagemillError,
    PermanentError,
    TransientError,
    is_retryable,
)
from pipeline.llm.errors import LlmAnswerError, LlmConfigError, LlmUnavailableError


@pytest.mark.parametrize(
    "error",
    [PagemillError, BadInputError, LimitExceededError, NotFoundError, ConflictError, EngineUnavailableError,
     LlmConfigError, LlmAnswerError, CallbackRejectedError],
)  # fmt: skip
def test_errors_retrying_cannot_fix_are_permanent(error: type[PagemillError]) -> None:
    assert isinstance(error("why"), PermanentError) and issubclass(error, PermanentError)
    assert not is_retryable(error("why"))


@pytest.mark.parametrize("error", [TransientError("down"), LlmUnavailableError("429"), CallbackFailedError("503"),
                                   ConnectionError("reset"), KeyError("bug")])  # fmt: skip
def test_transient_errors_and_foreign_ones_are_retried(error: BaseException) -> None:
    assert not isinstance(error, PermanentError)
    assert is_retryable(error)


def test_every_actor_uses_the_one_rule(broker: RedisBroker) -> None:
    # Before: three hand-written tuples that disagreed (ConflictError, a plain PagemillError).
    for name in broker.get_declared_actors():
        throws = broker.get_actor(name).options.get("throws")
        assert throws is None or throws is PermanentError, name
