"""Hostile HTTP requests: bad filenames, form fields, multipart framing, ids, routes, methods,
API keys and JSON bodies. Each gets a 4xx with a JSON error naming the problem, or (filenames)
is accepted with the name made harmless and the file stored under ``documents/<id>/``."""

from __future__ import annotations

import re
import unicodedata
import uuid

import httpx
import pytest

from tests.security import corpus
from tests.security._http import (
    BOUNDARY,
    MULTIPART,
    Part,
    assert_error,
    body,
    file_part,
    upload,
)
from tests.security.conftest import API_KEY, Stack
from web.app import ROUTES
from web.uploads import MAX_FILENAME_CHARS

SMALL_PDF = corpus.one_page_pdf()

# --- filenames: accepted, but never a path and never more than a name -------------------------

FILENAMES = {
    "traversal-relative": b"../../etc/passwd.pdf",
    "traversal-absolute": b"/etc/passwd",
    "traversal-backslashes": b"..\\..\\windows\\win.ini",
    "windows-drive-path": b"C:\\Windows\\System32\\evil.pdf",
    "only-dots": b"..",
    "nul-byte": b"report\x00.pdf.exe",
    "control-chars": b"a\x01b\x1b[31mred\x7f.pdf",
    "300-chars": "é".encode() * 300 + b".pdf",
    "non-utf8-bytes": b"\xff\xfe\xc3(.pdf",
    "unicode-rtl-override": "invoice\u202efdp.exe".encode(),
    "empty": b"",
}


@pytest.mark.parametrize("raw", FILENAMES.values(), ids=FILENAMES.keys())
def test_hostile_filename_is_reduced_to_a_harmless_name(stack: Stack, api: httpx.Client, raw: bytes) -> None:
    response = upload(api, [file_part(SMALL_PDF, raw)])
    assert response.status_code == 202, response.text
    doc_id = response.json()["id"]
    doc = api.get(f"/api/documents/{doc_id}").json()
    name = doc["filename"]
    if name is not None:
        assert 0 < len(name) <= MAX_FILENAME_CHARS
        assert not re.search(r"[/\\]", name), name
        assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name), name
        assert name not in (".", "..")
    # The name never reaches a storage key: the source is source.pdf, and whatever the workers
    # already wrote (results, thumbnails: a born-digital page is done in milliseconds) is
    # named by the pipeline too.
    keys = [k for k in stack.stored_keys() if doc_id in k]
    assert f"documents/{doc_id}/source.pdf" in keys, keys
    # (a file being written is ".<name>.<hex>.part" beside it, renamed into place when complete)
    named = r"(source\.pdf|result\.(txt|json)|thumbnails/\.?[0-9]+\.png)"
    allowed = re.compile(rf"^documents/{doc_id}/(\.?{named}(\.[0-9a-f]{{32}}\.part)?)$")
    assert all(allowed.match(k) for k in keys), keys


# --- form fields and multipart framing ----------------------------------------------------------


def _field(name: bytes, value: bytes) -> Part:
    return Part(name, value)


FILE = file_part(SMALL_PDF)
FORMS: dict[str, tuple[bytes, str, int, str, tuple[str, ...]]] = {}


def _form(case: str, parts: list[Part], status: int, code: str, *phrases: str, **kw: object) -> None:
    FORMS[case] = (body(parts, **kw), MULTIPART, status, code, phrases)  # type: ignore[arg-type]


_form("non-utf8-field-value", [_field(b"lang_hints", b"\xff\xfe\xfd"), FILE], 400, "bad_request", "UTF-8")
_form("10k-char-filename", [file_part(SMALL_PDF, b"x" * 10_000 + b".pdf")], 400, "bad_request", "header")
_form("oversized-field", [_field(b"lang_hints", b"e" * 20_000), FILE], 400, "bad_request", "lang_hints")
_form("unknown-field", [_field(b"delete_everything", b"yes"), FILE], 400, "bad_request", "delete_everything")
_form("non-utf8-field-name", [_field(b"\xff\xfe", b"1"), FILE], 400, "bad_request")
_form(
    "sql-in-lang-hints",
    [_field(b"lang_hints", b"en'; DROP TABLE documents;--"), FILE],
    400,
    "bad_request",
    "lang_hints",
)
_form("too-many-lang-hints", [_field(b"lang_hints", b",".join([b"en"] * 50)), FILE], 400, "bad_request")
_form("dpi-not-a-number", [_field(b"dpi", b"1e9"), FILE], 400, "bad_request", "dpi")
_form("dpi-out-of-range", [_field(b"dpi", b"100000000"), FILE], 400, "bad_request", "dpi")
_form("dpi-sent-twice", [_field(b"dpi", b"100"), _field(b"dpi", b"200"), FILE], 400, "bad_request", "dpi")
_form("min-confidence-nan", [_field(b"min_confidence", b"nan"), FILE], 400, "bad_request", "min_confidence")
_form(
    "min-confidence-infinity",
    [_field(b"min_confidence", b"-inf"), FILE],
    400,
    "bad_request",
    "min_confidence",
)
_form(
    "unknown-postprocess-step", [_field(b"postprocess", b"rm -rf /"), FILE], 400, "bad_request", "postprocess"
)
_form("field-after-file", [FILE, _field(b"dpi", b"200")], 400, "bad_request", "before the file")
_form(
    "duplicate-file-parts", [FILE, file_part(SMALL_PDF, b"two.pdf")], 400, "bad_request", "more than one file"
)
_form("missing-file-part", [_field(b"dpi", b"200")], 400, "bad_request", "no file part")
_form("no-parts-at-all", [], 400, "bad_request")
_form("part-without-disposition", [Part(b"x", b"y", extra_headers=[b"X-Junk: 1"])], 400, "bad_request")
_form("65-parts", [_field(b"dpi", b"1")] * 65 + [FILE], 400, "bad_request", "parts")
_form(
    "10k-part-header",
    [Part(b"a", b"b", extra_headers=[b"X-Pad: " + b"p" * 10_000]), FILE],
    400,
    "bad_request",
    "header",
)
_form("body-cut-before-closing-boundary", [FILE], 400, "bad_request", "closing boundary", close=False)
_form("boundary-not-the-declared-one", [FILE], 400, "bad_request", boundary=b"another-boundary")
FORMS["multipart-without-boundary"] = (body([FILE]), "multipart/form-data", 415, "unsupported_media_type", ())
FORMS["boundary-empty"] = (body([FILE]), "multipart/form-data; boundary=", 415, "unsupported_media_type", ())
FORMS["json-body"] = (b'{"file": "JVBERi0xLjc="}', "application/json", 415, "unsupported_media_type", ())
FORMS["urlencoded-body"] = (
    b"file=%25PDF-1.7",
    "application/x-www-form-urlencoded",
    415,
    "unsupported_media_type",
    (),
)
FORMS["raw-pdf-as-octet-stream"] = (SMALL_PDF, "application/octet-stream", 415, "unsupported_media_type", ())
FORMS["no-content-type"] = (body([FILE]), "", 415, "unsupported_media_type", ())
FORMS["garbage-content-type"] = (body([FILE]), "\x01;;;==;boundary", 415, "unsupported_media_type", ())


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code", "phrases"), FORMS.values(), ids=FORMS.keys()
)
def test_bad_form_is_refused(
    stack: Stack,
    api: httpx.Client,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
    phrases: tuple[str, ...],
) -> None:
    before = stack.sources()
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post("/api/documents", content=content, headers=headers)
    assert_error(response, status, code, *phrases)
    assert stack.sources() == before, "a refused upload left a file in storage"


# --- ids in every route ---------------------------------------------------------------------------

HOSTILE_IDS = {
    "not-a-uuid": "not-a-uuid",
    "sql-injection": "1' OR '1'='1'; DROP TABLE documents;--",
    "10k-chars": "7" * 10_000,
    "unicode": "ünïcødé-文書-🙂",
    "encoded-nul": "%00",
    "encoded-traversal": "..%2F..%2Fetc%2Fpasswd",
    "unknown-uuid": str(uuid.UUID(int=0x5EC)),
}
ID_ROUTES = [
    (method, route.path.replace("{kind}", "summary"))
    for route in ROUTES
    if "{document_id}" in route.path
    for method in sorted(route.methods or ())
    if method != "HEAD"
]


@pytest.mark.parametrize("bad_id", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
@pytest.mark.parametrize(("method", "path"), ID_ROUTES, ids=[f"{m} {p}" for m, p in ID_ROUTES])
def test_hostile_id_is_a_json_404(api: httpx.Client, method: str, path: str, bad_id: str) -> None:
    url = path.replace("{document_id}", bad_id)
    response = api.request(method, url, timeout=10)
    assert_error(response, 404, "not_found")


def test_hostile_artifact_kind(api: httpx.Client) -> None:
    doc_id = upload(api, [FILE]).json()["id"]
    for kind in ("../../etc/passwd", "summary'--", "x" * 5000, "%00"):
        response = api.get(f"/api/documents/{doc_id}/artifacts/{kind}")
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["error"]["message"]


# --- query parameters, routes, methods ------------------------------------------------------------

REQUESTS = {
    "limit-not-a-number": ("GET", "/api/documents?limit=abc", 400, "bad_request"),
    "limit-zero": ("GET", "/api/documents?limit=0", 400, "bad_request"),
    "limit-huge": ("GET", "/api/documents?limit=" + "9" * 40, 400, "bad_request"),
    "offset-negative": ("GET", "/api/documents?offset=-1", 400, "bad_request"),
    "offset-beyond-int64": ("GET", "/api/documents?offset=" + "9" * 30, 400, "bad_request"),
    "status-sql-injection": ("GET", "/api/documents?status=completed'%20OR%201=1--", 400, "bad_request"),
    "status-empty": ("GET", "/api/documents?status=", 400, "bad_request"),
    "status-unicode": ("GET", "/api/documents?status=%C3%BC%F0%9F%99%82", 400, "bad_request"),
    "unknown-route": ("GET", "/api/nothing-here", 404, "not_found"),
    "traversal-route": ("GET", "/api/documents/../../../etc/passwd", 404, "not_found"),
    "static-probe": ("GET", "/.env", 404, "not_found"),
    "delete-collection": ("DELETE", "/api/documents", 405, "method_not_allowed"),
    "put-document": ("PUT", f"/api/documents/{uuid.uuid4()}", 405, "method_not_allowed"),
    "patch-healthz": ("PATCH", "/healthz", 405, "method_not_allowed"),
    "post-openapi": ("POST", "/openapi.json", 405, "method_not_allowed"),
    "unknown-method": ("BREW", "/api/documents", 405, "method_not_allowed"),
}


@pytest.mark.parametrize(("method", "path", "status", "code"), REQUESTS.values(), ids=REQUESTS.keys())
def test_hostile_request_is_a_json_4xx(
    api: httpx.Client, method: str, path: str, status: int, code: str
) -> None:
    assert_error(api.request(method, path), status, code)


def test_405_lists_every_method_of_the_path(api: httpx.Client) -> None:
    # GET and POST /api/documents are two routes; Starlette's own Allow named only the first.
    response = api.delete("/api/documents")
    assert_error(response, 405, "method_not_allowed", "DELETE")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD", "POST"}


def test_reprocess_flag_that_is_not_a_boolean(api: httpx.Client) -> None:
    doc_id = upload(api, [FILE]).json()["id"]
    assert_error(
        api.post(f"/api/documents/{doc_id}/reprocess?only_failed=maybe"), 400, "bad_request", "only_failed"
    )


# --- API keys -----------------------------------------------------------------------------------

AUTH = {
    "no-header": ({}, 401, "unauthorized"),
    "bearer-without-token": ({"Authorization": "Bearer"}, 401, "unauthorized"),
    "basic-scheme": ({"Authorization": "Basic c2VjdXJpdHk6a2V5"}, 401, "unauthorized"),
    "key-as-query-scheme": ({"Authorization": API_KEY}, 401, "unauthorized"),
    "wrong-key": ({"Authorization": "Bearer not-the-key"}, 403, "forbidden"),
    "key-prefix": ({"Authorization": f"Bearer {API_KEY[:-1]}"}, 403, "forbidden"),
    "key-with-suffix": ({"Authorization": f"Bearer {API_KEY}x"}, 403, "forbidden"),
    "10k-key": ({"Authorization": "Bearer " + "k" * 10_000}, 403, "forbidden"),
    "non-ascii-key": ({"Authorization": b"Bearer \xff\xfe\xe9"}, 403, "forbidden"),
}


@pytest.mark.parametrize(("headers", "status", "code"), AUTH.values(), ids=AUTH.keys())
def test_missing_or_wrong_api_key(stack: Stack, headers: dict[str, str], status: int, code: str) -> None:
    before = stack.sources()
    with stack.client(key=None) as client:
        for method, path in [("GET", "/api/documents"), ("GET", f"/api/documents/{uuid.uuid4()}/text"),
                             ("GET", "/metrics"), ("GET", "/openapi.json")]:  # fmt: skip
            assert_error(client.request(method, path, headers=headers), status, code, "key")
        upload_response = client.post(
            "/api/documents", content=body([FILE]), headers={**headers, "Content-Type": MULTIPART}
        )
        assert_error(upload_response, status, code, "key")
        assert client.get("/healthz", headers=headers).status_code == 200  # probes stay open
    assert stack.sources() == before


# --- JSON where none is expected ---------------------------------------------------------------


def test_json_bodies_are_ignored_where_none_is_expected(api: httpx.Client) -> None:
    doc_id = upload(api, [FILE]).json()["id"]
    hostile = b'{"status": "completed", "id": "' + b"a" * 100_000 + b'", "__proto__": {"admin": true}}'
    headers = {"Content-Type": "application/json"}
    cancel = api.post(f"/api/documents/{doc_id}/cancel", content=hostile, headers=headers)
    assert cancel.status_code in (200, 409), cancel.text
    reprocess = api.post(f"/api/documents/{uuid.uuid4()}/reprocess", content=b"[" * 50_000, headers=headers)
    assert_error(reprocess, 404, "not_found")
    listing = api.request("GET", "/api/documents", content=b"{not json", headers=headers)
    assert listing.status_code == 200
    assert BOUNDARY  # the raw multipart helpers are shared with the upload cases
