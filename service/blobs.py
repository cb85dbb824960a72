"""Blobs as the API sees them: released when nothing references them, served as downloads."""

import re
from urllib.parse import quote

from fastapi.responses import StreamingResponse

from storage import BlobStore, JobStore


def release_blob(store: JobStore, blobs: BlobStore, sha256: str) -> None:
    """Delete a blob that no model, dataset or artifact references any more.

    Blobs are shared by content, so an upload of bytes someone else already stored must not
    take theirs away when it is refused or deleted.
    """
    if not store.sha256_in_use(sha256):
        blobs.delete(sha256)


def download(
    blobs: BlobStore, sha256: str, filename: str, media_type: str, inline: bool = False
) -> StreamingResponse:
    """Stream a blob (1 MiB chunks, read in a thread) with a safe Content-Disposition."""
    size = blobs.size(sha256)
    return StreamingResponse(
        blobs.open_chunks(sha256),
        media_type=media_type,
        headers={
            "Content-Disposition": content_disposition(filename, inline),
            "Content-Length": str(size),
        },
    )


def content_disposition(filename: str, inline: bool = False) -> str:
    """`attachment` (or `inline`) with an ASCII fallback and the exact name in RFC 8187
    `filename*`."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename).strip("._") or "download"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
