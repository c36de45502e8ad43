"""schemathesis against the running app's own ``/openapi.json``."""

from __future__ import annotations

from collections import defaultdict

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    positive_data_acceptance,
    unsupported_method,
)

from tests.security.conftest import API_KEY, Stack
from web.app import ROUTES
from web.openapi import build_schema

# The document the app serves, built from the same routes at collection time (schemathesis
# parametrizes per operation before any fixture runs); the first test checks they are equal.
RAW_SCHEMA = build_schema(ROUTES)
# The key goes through schemathesis' auth config (the "bearer" scheme of the document), not a
# fixed header, so the cases it generates without a key or with a wrong one stay as generated.
schema = schemathesis.openapi.from_dict(
    RAW_SCHEMA,
    config=schemathesis.config.SchemathesisConfig.from_dict(
        {"auth": {"openapi": {"bearer": {"bearer": API_KEY}}}}
    ),
)


# Status codes each operation answered to requests carrying the key.
AUTHORIZED: defaultdict[str, set[int]] = defaultdict(set)


def test_served_schema_is_the_fuzzed_one(stack: Stack) -> None:
    with stack.client() as client:
        assert client.get("/openapi.json").json() == RAW_SCHEMA


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case: schemathesis.Case, stack: Stack) -> None:
    """Every check schemathesis has: no 5xx, documented status codes and bodies, 405s, auth."""
    excluded = []
    if case.operation.path == "/api/documents/upload":
        # This path is also GET /api/documents/{document_id} with the id "upload": a 404 for an
        # id that is not a UUID (and GET in its Allow header) is right there, not a 405.
        excluded += [unsupported_method, allow_header_conformance]
    if (
        case.operation.method == "post"
        and case.operation.path.startswith("/api/documents")
        and "{" not in case.operation.path
    ):
        # An upload must hold a real PDF or image and option values from short lists (language
        # codes, step names): a schema cannot say that, so schema-valid bytes are rightly refused.
        excluded.append(positive_data_acceptance)
    if case.operation.path == "/api/search":
        # This stack's PostgreSQL has no pgvector: a hybrid or vector search is a documented 501
        # (checked below to be exactly that), and status values come from a list a schema cannot say.
        excluded += [not_a_server_error, positive_data_acceptance]
    response = case.call_and_validate(base_url=stack.url, excluded_checks=excluded, timeout=10)
    if case.operation.path == "/api/search" and response.status_code >= 500:
        assert response.status_code == 501 and response.json()["error"]["code"] == "pgvector_missing", response.text
    if response.request.headers.get("Authorization") == f"Bearer {API_KEY}":
        assert response.status_code not in (401, 403), response.text
        AUTHORIZED[case.operation.label].add(response.status_code)


def test_fuzzing_reached_the_endpoints() -> None:
    """The auth config really sent the key: list, metrics, schema and upload answered 2xx."""
    for label in ("GET /api/documents", "GET /metrics", "GET /openapi.json", "POST /api/documents"):
        assert any(200 <= code < 300 for code in AUTHORIZED[label]), (label, AUTHORIZED[label])
