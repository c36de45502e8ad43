"""The dashboard's files over HTTP: served from the package, locked down, open without a key but empty."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx

import web
from tests import pages

STATIC_DIR = Path(web.__file__).parent / "static"


def test_dashboard_page_and_assets_are_served_with_a_strict_policy(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "'unsafe-inline'" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert sorted(assets) == ["/static/dashboard.css", "/static/dashboard.js"]
    script = api.get("/static/dashboard.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.text == (STATIC_DIR / "dashboard.js").read_text(encoding="utf-8")
    assert api.get("/static/dashboard.css").headers["content-type"].startswith("text/css")
    assert api.get("/static/nothing.js").status_code == 404
    assert api.get("/static/../web/dashboard.py").status_code == 404


def test_no_inline_script_or_html_parsing_of_server_data() -> None:
    # The policy forbids inline script; the script never parses strings as HTML.
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert re.search(r"\son[a-z]+\s*=", html) is None and "javascript:" not in html
    script = (STATIC_DIR / "dashboard.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


def test_with_api_keys_the_page_is_open_but_the_data_is_not(serve: Callable[..., str]) -> None:
    with httpx.Client(base_url=serve(api_keys="dash-key"), timeout=30) as client:
        upload = client.post(
            "/api/documents",
            headers={"Authorization": "Bearer dash-key"},
            files={"file": ("secret-report.pdf", pages.pdf_bytes([pages.blank_page(255)]))},
        )
        assert upload.status_code == 202, upload.text
        page = client.get("/")
        assert page.status_code == 200 and "secret-report" not in page.text
        assert client.get("/static/dashboard.js").status_code == 200
        # The page's own requests are refused until the key is sent.
        assert client.get("/api/documents").status_code == 401
        assert client.get("/static/../api/documents").status_code in (401, 404)
        doc_id = upload.json()["id"]
        assert client.get(f"/api/documents/{doc_id}/pages/1/thumbnail.png").status_code == 401
