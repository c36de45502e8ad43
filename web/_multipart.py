"""multipart/form-data read as a stream of events, never buffering a file part.

Starlette's ``request.form()`` spools file parts to temporary files before the endpoint runs;
an upload must instead flow straight to storage. python-multipart's push parser calls back
with slices of each chunk; the callbacks queue events that ``read_parts`` yields after each
chunk, so memory holds one network chunk (plus small form fields) at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from web.errors import BadRequestError

# Largest text field, bytes; fields are small options, never documents.
MAX_FIELD_BYTES = 16 * 1024
# Most parts in one request (fields plus the file).
MAX_PARTS = 64
# Largest header block of one part, bytes: a file name of a few thousand characters fits (it is
# kept shortened, web.uploads); a longer one is refused with our message.
MAX_PART_HEADER_BYTES = 8 * 1024
_HEADERS_TOO_LONG = (
    f"a form part has more than {MAX_PART_HEADER_BYTES} bytes of headers (a file name that long?); "
    "rename the file and upload it again"
)


@dataclass(frozen=True, slots=True)
class Field:
    """A complete text field."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class FileStart:
    """A file part begins; its bytes follow as ``bytes`` events, then ``FileEnd``."""

    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class FileEnd:
    """The current file part is complete."""


Event = Field | FileStart | FileEnd | bytes


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type, or None when it is not one."""
    media, params = parse_options_header(content_type)
    if media != b"multipart/form-data":
        return None
    return params.get(b"boundary") or None


class _Collector:
    """python-multipart callbacks that turn parser output into queued events."""

    def __init__(self) -> None:
        self.events: deque[Event] = deque()
        self.ended = False
        self._parts = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._header_bytes = 0
        self._headers: dict[bytes, bytes] = {}
        self._field: bytearray | None = None  # set while inside a text field
        self._name = ""

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header(self._header_field, data[start:end]),
            "on_header_value": lambda data, start, end: self._header(self._header_value, data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise BadRequestError(f"the form has more than {MAX_PARTS} parts")
        self._headers = {}
        self._header_bytes = 0

    def _header(self, buffer: bytearray, data: bytes) -> None:
        self._header_bytes += len(data)
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise BadRequestError(_HEADERS_TOO_LONG)
        buffer.extend(data)

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise BadRequestError("a form part has no Content-Disposition: form-data; name=...")
        self._name = params[b"name"].decode("utf-8", "replace")
        # A part is a file when it has a filename (browsers, curl -F name=@path, httpx) or is
        # named "file" (curl -F "file=<path>" sends no filename): never buffered as a field.
        if b"filename" in params or self._name == "file":
            filename = params.get(b"filename", b"").decode("utf-8", "replace")
            content_type = self._headers.get(b"content-type")
            self._field = None
            self.events.append(
                FileStart(
                    self._name, filename or None, content_type.decode("latin-1") if content_type else None
                )
            )
        else:
            self._field = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._field is None:
            self.events.append(data[start:end])
            return
        self._field.extend(data[start:end])
        if len(self._field) > MAX_FIELD_BYTES:
            raise BadRequestError(f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._field is None:
            self.events.append(FileEnd())
            return
        try:
            value = self._field.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequestError(f"form field {self._name!r} is not UTF-8 text") from None
        self.events.append(Field(self._name, value))
        self._field = None

    def _end(self) -> None:
        self.ended = True


async def read_parts(body: AsyncIterable[bytes], boundary: bytes) -> AsyncGenerator[Event, None]:
    """Parse a multipart body as it arrives: fields whole, file parts as chunks."""
    collector = _Collector()
    # python-multipart's own limit on one header line (4 kB by default) would refuse a long file
    # name: it gets ours, and its refusal our message (below).
    parser = MultipartParser(boundary, collector.callbacks(), max_header_size=MAX_PART_HEADER_BYTES)  # type: ignore[arg-type]
    try:
        async for chunk in body:
            if chunk:
                parser.write(chunk)
            while collector.events:
                yield collector.events.popleft()
        parser.finalize()
    except MultipartParseError as exc:
        if "header size" in str(exc):
            raise BadRequestError(_HEADERS_TOO_LONG) from None
        raise BadRequestError(f"the multipart body is malformed ({exc}); send multipart/form-data") from None
    while collector.events:
        yield collector.events.popleft()
    if not collector.ended:
        raise BadRequestError(
            "the multipart body ended before its closing boundary; the upload was cut short"
        )
