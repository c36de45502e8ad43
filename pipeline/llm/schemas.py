"""The LLM products as pydantic models, and their strict JSON schemas for structured output.

A model validates what the server answers; ``response_format`` derives from the same model,
so the schema sent and the check applied cannot drift apart. Each product has a chunk model
(what one map call returns) and is merged by ``pipeline.llm.products``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Options per multiple-choice question.
QUIZ_OPTIONS = 4


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Summary(_Strict):
    """A document summary."""

    title: str = Field(min_length=1)
    short_summary: str = Field(min_length=1, description="two or three sentences")
    long_summary: str = Field(min_length=1, description="several paragraphs")
    key_points: list[str]
    tags: list[str]
    source_pages: list[int] = Field(description="pages the summary draws on")


class Flashcard(_Strict):
    """One card: a question or term on the front, the answer on the back."""

    front: str = Field(min_length=1)
    back: str = Field(min_length=1)
    source_page: int = Field(ge=1)


class Flashcards(_Strict):
    """A deck of flashcards."""

    cards: list[Flashcard]


class QuizQuestion(_Strict):
    """A multiple-choice question with exactly four options."""

    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=QUIZ_OPTIONS, max_length=QUIZ_OPTIONS)
    answer_index: int = Field(ge=0, le=QUIZ_OPTIONS - 1)
    explanation: str
    source_page: int = Field(ge=1)


class Quiz(_Strict):
    """A multiple-choice quiz."""

    questions: list[QuizQuestion]


class DiagnosticQuestion(_Strict):
    """A question that probes one topic at one difficulty."""

    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=QUIZ_OPTIONS, max_length=QUIZ_OPTIONS)
    answer_index: int = Field(ge=0, le=QUIZ_OPTIONS - 1)
    topic: str = Field(min_length=1)
    difficulty: Literal["easy", "medium", "hard"]
    source_page: int = Field(ge=1)


class Diagnostics(_Strict):
    """A short diagnostic test: what the reader does not know yet, by topic and difficulty."""

    topics: list[str]
    questions: list[DiagnosticQuestion]


# What a document is, for ``Metadata.document_type``.
DOCUMENT_TYPES = (
    "invoice", "receipt", "letter", "article", "form", "contract", "report", "statement",
    "manual", "course_notes", "slides", "other",
)  # fmt: skip


class FoundDate(_Strict):
    """A date the document names, and what happens on it."""

    date: str = Field(min_length=1, description="ISO 8601: YYYY-MM-DD, or YYYY-MM when the day is not given")
    meaning: str = Field(description="e.g. issue date, due date, signed on, published")
    source_page: int = Field(ge=1)


class Party(_Strict):
    """A person or organisation the document names, and its role."""

    name: str = Field(min_length=1)
    role: str = Field(description="e.g. sender, recipient, vendor, customer, author, signatory")
    source_page: int = Field(ge=1)


class Metadata(_Strict):
    """What a document is: a file name to give it, its type, language, tags, dates and parties."""

    filename_suggestion: str = Field(
        min_length=1, description="short descriptive file name without extension, e.g. 2024-03-acme-invoice-INV-0042"
    )
    document_type: Literal[DOCUMENT_TYPES]  # type: ignore[valid-type]
    language: str = Field(min_length=2, description="ISO 639-1 code of the main language, e.g. en, fr")
    tags: list[str] = Field(description="3-8 short lowercase topic tags")
    dates: list[FoundDate]
    parties: list[Party]


PRODUCTS: dict[str, type[BaseModel]] = {
    "summary": Summary,
    "flashcards": Flashcards,
    "quiz": Quiz,
    "diagnostics": Diagnostics,
    "metadata": Metadata,
}


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The strict JSON schema of ``model``."""
    # Strict mode: every object closed, every property required, no defaults or titles. A
    # property *named* "title" is a field, not an annotation, so property names are kept.
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "properties":
                    out[key] = {name: walk(prop) for name, prop in value.items()}
                elif key in ("title", "default"):
                    continue
                else:
                    out[key] = walk(value)
            if out.get("type") == "object" and "properties" in out:
                out["additionalProperties"] = False
                out["required"] = list(out["properties"])
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(model.model_json_schema())
    return result


def response_format(model: type[BaseModel]) -> dict[str, Any]:
    """The ``response_format`` argument asking for ``model`` as structured output."""
    return {
        "type": "json_schema",
        "json_schema": {"name": model.__name__.lower(), "strict": True, "schema": json_schema(model)},
    }
