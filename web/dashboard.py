"""The dashboard at ``/``: one static HTML page, its script and style from ``web/static/``.

The page holds no data: everything it shows comes from the JSON API, called by its script with
the API key the user types in (kept in the tab's sessionStorage), so ``/`` and ``/static/`` are
open even when PAGEMILL_API_KEYS is set (see web/auth.py) and leak nothing without a key. A
strict Content-Security-Policy allows only this origin's script and style, so even a file name
that slipped into the page as markup could not run anything.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

# Where the page's assets are served (web/auth.py keeps this prefix open).
STATIC_PATH = "/static"
# blob: images and links: thumbnails and results fetched with the Authorization header.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

_INDEX_HTML = (resources.files("web") / "static" / "index.html").read_text(encoding="utf-8")


async def dashboard(request: Request) -> Response:
    """The dashboard page (upload, recent documents, per-page status and thumbnails).
    ---
    summary: Dashboard (HTML page; open without an API key, it holds no data)
    tags: [operations]
    responses:
      "200": {description: "text/html", content: {text/html: {}}}
    """
    return HTMLResponse(_INDEX_HTML, headers=SECURITY_HEADERS)


routes = [
    Route("/", dashboard, methods=["GET"], name="dashboard"),
    Mount(STATIC_PATH, app=StaticFiles(packages=[("web", "static")]), name="static"),
]
