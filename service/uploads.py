"""Multipart uploads streamed straight into the blob store, the size limit enforced as the
bytes arrive.

Why not `request.form()`: Starlette 1.10 spools every file part into a temporary file of
unbounded size before the route runs (its `max_part_size` bounds only non-file fields), so a
2 GB limit would be checked only after 2 GB sat on the disk. Here python-multipart's
streaming parser hands the file part to `BlobStore.put_stream` (in a worker thread, so the
event loop never blocks on disk) chunk by chunk; past `max_bytes` it raises, its temp file
is removed, and the rest of the body is only drained (a bounded amount, then the connection
closes). Memory stays at a few hundred KiB whatever the upload's size.
"""

import re
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, cast

import anyio.from_thread
import anyio.to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

from service.blobs import release_blob
from service.problems import InsufficientStorage, Invalid, PayloadTooLarge, ProblemError
from storage import BlobStore, JobStore
from storage.blob_store import BlobTooLarge, StagingFull, StoredBlob

FILE_FIELD = "file"
MAX_FIELDS = 8
MAX_FIELD_BYTES = 4096
MAX_NAME_CHARS = 256
# Boundaries, part headers and the few small fields around the file part.
_MULTIPART_OVERHEAD = MAX_FIELDS * MAX_FIELD_BYTES + 64 * 1024
# Kept free when taking an upload: the job store, logs and job work dirs share the disk.
_DISK_RESERVE = 64 * 1024**2
# A refused upload still reads this much of the rest of the body (see `drain`).
DRAIN_BYTES = 16 * 1024 * 1024
# Hand the blob store ~256 KiB at a time: fewer thread hops, memory still bounded.
_BATCH_BYTES = 256 * 1024


@dataclass(frozen=True)
class Upload:
    blob: StoredBlob
    filename: str | None
    fields: dict[str, str]


async def receive_upload(
    request: Request,
    store: JobStore,
    blobs: BlobStore,
    max_bytes: int,
    field_names: frozenset[str],
) -> Upload:
    """Store the `file` part of a multipart body; return it with the named text fields.

    A body that turns out bad after the file part (a stray field, a cut-off end) releases the
    blob again, so a refused upload leaves nothing behind.
    """
    boundary = _boundary(request)
    body = request.stream()
    try:
        _refuse_declared_oversize(request, max_bytes)
        _refuse_what_the_disk_cannot_hold(request, blobs)
        return await _receive(body, boundary, store, blobs, max_bytes, field_names)
    except (PayloadTooLarge, BlobTooLarge, InsufficientStorage):
        await drain(body, DRAIN_BYTES)
        raise
    except StagingFull as exc:
        await drain(body, DRAIN_BYTES)
        raise InsufficientStorage(f"the upload filled the service's disk ({exc})") from exc


async def drain(body: AsyncIterator[bytes], budget: int) -> None:
    """Read and drop what the client is still sending, up to `budget` bytes.

    Closing a socket with unread data makes the kernel answer with a reset, which can
    destroy the 413 before the client reads it; past the budget we let that happen.
    """
    async for chunk in body:
        budget -= len(chunk)
        if budget < 0:
            return


async def _receive(
    body: AsyncIterator[bytes],
    boundary: bytes,
    store: JobStore,
    blobs: BlobStore,
    max_bytes: int,
    field_names: frozenset[str],
) -> Upload:
    parts = _Parts(field_names)
    feed = _Feed(body, MultipartParser(boundary, parts.callbacks()), parts)
    await feed.until(lambda: parts.file_started or parts.ended)
    if not parts.file_started:
        raise Invalid(FILE_FIELD, "required: send the content as a multipart file part")
    stream = cast(BinaryIO, _FileStream(feed))
    blob = await anyio.to_thread.run_sync(blobs.put_stream, stream, max_bytes)
    try:
        await feed.until(lambda: parts.ended)
    except BaseException:
        await anyio.to_thread.run_sync(release_blob, store, blobs, blob.sha256)
        raise
    return Upload(blob=blob, filename=parts.filename, fields=parts.fields)


def display_name(raw: str | None, default: str) -> str:
    """A name to show, never a path: its last segment, without control or format characters
    (NUL, newlines, bidi overrides), at most 256 characters."""
    last = re.split(r"[/\\]", raw or "")[-1]
    cleaned = "".join(c for c in last if unicodedata.category(c)[0] != "C").strip()
    return cleaned[:MAX_NAME_CHARS] or default


def _boundary(request: Request) -> bytes:
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise ProblemError(415, "unsupported_media_type", "send the upload as multipart/form-data")
    return params[b"boundary"]


def _refuse_what_the_disk_cannot_hold(request: Request, blobs: BlobStore) -> None:
    """A declared body larger than the free space is refused before a byte is written, so
    a large upload never fills the disk the job store and other uploads share."""
    declared = _declared_length(request)
    free = blobs.staging_free_bytes() - _DISK_RESERVE
    if declared is not None and declared > free:
        raise InsufficientStorage(
            f"the upload ({declared} bytes) does not fit the {max(free, 0)} bytes free for uploads"
        )


def _refuse_declared_oversize(request: Request, max_bytes: int) -> None:
    declared = _declared_length(request)
    if declared is not None and declared > max_bytes + _MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


@dataclass
class _Parts:
    """Callbacks for the streaming parser: small text fields kept, file bytes queued."""

    field_names: frozenset[str]
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    file_started: bool = False
    file_open: bool = False
    ended: bool = False
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0
    _name: str = ""
    _is_file: bool = False
    _header: bytes = b""
    _value: bytes = b""
    _disposition: bytes = b""
    _data: bytearray = field(default_factory=bytearray)
    _parts: int = 0

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def take_pending(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        return data

    def _begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_FIELDS + 1:
            raise Invalid("body", f"at most {MAX_FIELDS} fields and one file part")
        self._disposition, self._data = b"", bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = self._name == FILE_FIELD
        if self._is_file:
            self._start_file(options.get(b"filename"))
        elif b"filename" in options:
            raise Invalid(self._name or "body", f"unexpected file part; send only `{FILE_FIELD}`")
        elif self._name not in self.field_names:
            allowed = ", ".join(sorted({FILE_FIELD, *self.field_names}))
            raise Invalid(self._name or "body", f"unexpected field; this form takes {allowed}")

    def _start_file(self, filename: bytes | None) -> None:
        if self.file_started:
            raise Invalid(FILE_FIELD, "send exactly one file part")
        self.file_started = self.file_open = True
        self.filename = filename.decode("utf-8", "replace") if filename is not None else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.pending.append(data[start:end])
            self.pending_bytes += end - start
            return
        self._data += data[start:end]
        if len(self._data) > MAX_FIELD_BYTES:
            raise Invalid(self._name, f"longer than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._is_file:
            self.file_open = False
            return
        try:
            self.fields[self._name] = self._data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid(self._name, "not valid UTF-8") from exc

    def _end(self) -> None:
        self.ended = True


class _Feed:
    """Pulls the request body through the parser, only as fast as it is consumed."""

    def __init__(self, body: AsyncIterator[bytes], parser: MultipartParser, parts: _Parts):
        self.body = body
        self.parser = parser
        self.parts = parts

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            await self._parse_next_chunk()

    async def next_file_bytes(self) -> bytes:
        while self.parts.file_open and self.parts.pending_bytes < _BATCH_BYTES:
            await self._parse_next_chunk()
        return self.parts.take_pending()

    async def _parse_next_chunk(self) -> None:
        chunk = await anext(self.body, b"")
        if not chunk:
            raise ProblemError(
                400, "malformed_multipart", "the body ended before its closing boundary"
            )
        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise ProblemError(400, "malformed_multipart", f"unreadable multipart: {exc}") from exc


class _FileStream:
    """The file part as a blocking `read()`, for `put_stream` in a worker thread."""

    def __init__(self, feed: _Feed) -> None:
        self.feed = feed

    def read(self, _size: int = -1) -> bytes:
        return anyio.from_thread.run(self.feed.next_file_bytes)


def openapi_form(example: dict[str, str], **fields: dict[str, object]) -> dict[str, object]:
    """`openapi_extra` documenting a multipart body the route reads itself (service/openapi.py
    names it `Body_<operationId>`). Unknown fields are refused, hence no additionalProperties."""
    properties = {FILE_FIELD: {"type": "string", "format": "binary"}, **fields}
    schema = {
        "type": "object",
        "required": [FILE_FIELD],
        "properties": properties,
        "additionalProperties": False,
        "examples": [example],
    }
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }
