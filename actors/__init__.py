"""Dramatiq actors: modules that only declare (``ocr``, ``llm``, ``maintenance``, ``notify``) and
the broker, middleware and process state they run with (``broker``, ``middleware``, ``runtime``).

Actors bind to the process's broker when their module is imported. Worker command lines set it
up first (``dramatiq actors.broker:setup_broker actors.ocr``); a module imported before that
declares on a placeholder that :func:`actors.broker.setup_broker` empties onto the real broker.
"""

from actors.broker import hold_declarations

hold_declarations()
