"""Property-based tests (hypothesis): id parsing, the Celery envelope decoder, and uploads with
arbitrary filenames and form fields against the running app."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.celery_protocol import CeleryTask, RefusedMessage, parse_message
from pipeline.documents import parse_document_id
from pipeline.errors import NotFoundError
from pipeline.jobs import parse_id
from tests.security import corpus
from tests.security._http import LEAKS, Part, body, file_part
from tests.security.conftest import Stack
from tests.security.test_envelopes import envelope
from web.uploads import MAX_FILENAME_CHARS

FAST = settings(max_examples=100, deadline=None)
# HTTP round trips: fewer examples, and the package-scoped stack is meant to be shared.
HTTP = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SMALL_PDF = corpus.one_page_pdf()

# --- ids ------------------------------------------------------------------------------------------


@FAST
@given(st.one_of(st.text(), st.text(alphabet="0123456789abcdefABCDEF-{}_ urn:uid", max_size=50)))
def test_parse_id_accepts_a_uuid_or_raises_not_found(value: str) -> None:
    for parse in (parse_id, parse_document_id):
        try:
            parsed = parse(value)
        except NotFoundError as exc:
            assert "UUID" in exc.reason and exc.http_status == 404
        else:
            assert isinstance(parsed, uuid.UUID)


@FAST
@given(st.uuids())
def test_parse_id_round_trips_uuids(value: uuid.UUID) -> None:
    for text in (str(value), value.hex, str(value).upper(), f"{{{value}}}", value.urn):
        assert parse_id(text) == value
    assert parse_id(value) is value
    assert parse_document_id(str(value)) == value


# --- the Celery envelope decoder ------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _decodes_or_refuses(raw: bytes | str) -> None:
    try:
        task = parse_message(raw)
    except RefusedMessage as exc:
        assert exc.reason and not any(leak in exc.reason for leak in LEAKS)
        assert exc.task_id is None or isinstance(exc.task_id, str)
    else:
        assert isinstance(task, CeleryTask) and isinstance(task.task_id, str)
        assert isinstance(task.args, list) and isinstance(task.kwargs, dict)


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_envelope_decoder_on_arbitrary_bytes(raw: bytes | str) -> None:
    _decodes_or_refuses(raw)


@FAST
@given(JSON_VALUES)
def test_envelope_decoder_on_arbitrary_json(value: Any) -> None:
    _decodes_or_refuses(json.dumps(value))


@FAST
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["task", "id", "eta", "expires", "timelimit", "group", "compression", "ignore_result"]
        ),
        JSON_VALUES,
        max_size=4,
    ),
    properties=st.dictionaries(st.sampled_from(["body_encoding", "correlation_id", "priority"]), JSON_VALUES),
    body=st.one_of(st.none(), JSON_VALUES, st.binary(max_size=50).map(lambda b: b.hex())),
    content_type=st.sampled_from(["application/json", "application/x-python-serialize", "", "text/plain"]),
)
def test_envelope_decoder_on_mutated_envelopes(
    headers: dict[str, Any], properties: dict[str, Any], body: Any, content_type: str
) -> None:
    _, raw = envelope(headers=headers, properties=properties, body=body, content_type=content_type)
    _decodes_or_refuses(raw)


# --- uploads ---------------------------------------------------------------------------------------


def _check_upload(stack: Stack, parts: list[Part]) -> None:
    with stack.client() as client:
        response = client.post(
            "/api/documents",
            content=body(parts),
            headers={"Content-Type": "multipart/form-data; boundary=pagemill-security-boundary"},
        )
        assert response.status_code < 500, response.text
        if response.status_code != 202:
            assert 400 <= response.status_code < 500 and response.json()["error"]["message"]
            return
        doc_id = response.json()["id"]
        name = client.get(f"/api/documents/{doc_id}").json()["filename"]
    if name is not None:
        assert 0 < len(name) <= MAX_FILENAME_CHARS and not re.search(r"[/\\]", name)
        assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name)
    assert [k for k in stack.sources() if doc_id in k] == [f"documents/{doc_id}/source.pdf"]


@HTTP
@given(filename=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_filename_is_stored_safely(stack: Stack, filename: bytes) -> None:
    _check_upload(stack, [file_part(SMALL_PDF, filename)])


@HTTP
@given(
    name=st.sampled_from([b"lang_hints", b"dpi", b"min_confidence", b"postprocess"]) | st.binary(max_size=30),
    value=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
)
def test_any_form_field_is_validated(stack: Stack, name: bytes, value: bytes) -> None:
    _check_upload(stack, [Part(name, value), file_part(SMALL_PDF)])
