"""Blobs are content-addressed, written whole or not at all, and bounded while streaming."""

import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from storage import BlobStore
from storage.blobs import BlobTooLarge, clear_stale_temp_files


def test_blob_is_stored_under_its_sha256(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = os.urandom(3 << 20)
    blob = store.put_stream(io.BytesIO(data), max_bytes=10 << 20)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert store.path(blob.sha256).read_bytes() == data
    assert b"".join(store.open_chunks(blob.sha256)) == data


def test_oversized_stream_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(BlobTooLarge):
        store.put_stream(io.BytesIO(b"x" * 5000), max_bytes=4096)
    # Only this process's locked session folder remains in tmp/, empty of upload bytes.
    assert [p for p in (tmp_path / "tmp").rglob("*") if p.is_file() and p.stat().st_size] == []
    assert list((tmp_path / "sha256").iterdir()) == []


def test_a_user_string_is_never_a_path(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    for evil in ("../../etc/passwd", "/etc/passwd", "a" * 64 + "/..", "G" * 64):
        with pytest.raises(ValueError):
            store.path(evil)


def test_stale_partial_uploads_are_cleared_but_live_ones_kept(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    stale = tmp_path / "tmp" / "upload-stale"
    live = tmp_path / "tmp" / "upload-live"
    stale.write_bytes(b"partial")
    live.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert clear_stale_temp_files(store) == 1
    assert not stale.exists() and live.exists()
