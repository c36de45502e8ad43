"""Docker HEALTHCHECK of the pagemill image: the web process must answer ``/healthz``.

One image runs every process type; only ``web`` listens on a port. The entry point records
the process type it started in ``$TMPDIR/pagemill-process``; any other type is healthy as long
as its container runs (Dramatiq and periodiq exit when they fail, and the container stops).
Standard library only: it runs once per interval and must start fast.
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

# Longest the probe waits for an answer, seconds (below the HEALTHCHECK --timeout).
TIMEOUT_S = 4.0


def main() -> int:
    marker = Path(tempfile.gettempdir()) / "pagemill-process"
    try:
        process_type = marker.read_text().strip()
    except OSError:
        process_type = ""
    if process_type != "web":
        return 0
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            if response.status == 200:
                return 0
            print(f"{url} answered {response.status}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url} did not answer: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
