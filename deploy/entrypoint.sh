#!/bin/sh
# Container entry point. `<image> web|ocr|default|clock|bridge` runs that line of the Procfile
# (the same commands a Procfile PaaS runs, with its ${VAR:-default} expansions); anything else
# runs as given (`<image> pagemill migrate`, `<image> python -m serverless_handler`).
set -eu

PROCFILE="${PROCFILE:-/app/Procfile}"
[ "$#" -gt 0 ] || set -- web

if [ "$#" -eq 1 ] && [ -r "$PROCFILE" ]; then
  # The Procfile line whose process type is exactly $1 (no pattern matching on user input).
  line=$(awk -v type="$1" '
    /^[[:space:]]*#/ { next }
    { i = index($0, ":"); if (i > 1 && substr($0, 1, i - 1) == type) { print substr($0, i + 1); exit } }
  ' "$PROCFILE")
  if [ -n "$line" ]; then
    # Tells the HEALTHCHECK script which process type this container runs (best effort: a
    # read-only /tmp only costs the web check).
    printf '%s\n' "$1" >"${TMPDIR:-/tmp}/pagemill-process" 2>/dev/null || true
    # exec twice: the process replaces this shell and then sh, so it receives SIGTERM itself.
    exec /bin/sh -c "exec $line"
  fi
fi
exec "$@"
