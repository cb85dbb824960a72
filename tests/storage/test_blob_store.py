"""Blobs are content-addressed, written whole or not at all, and bounded while streaming:
on the local disk and in an S3 bucket alike (`blob_store` runs each test on both)."""

import hashlib
import io
import os
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from shears_config import Settings
from storage import BlobMissing, BlobStore, FileBlobStore, open_blob_store
from storage.blobs import BlobTooLarge, clear_stale_temp_files
from storage.s3_blobs import S3BlobStore, parse_s3_url
from tests.support.s3_server import CREDENTIALS, S3Server
from tests.support.tcp_proxy import cutting_proxy


def stored_digests(store: BlobStore) -> list[str]:
    """The digests the store holds, read from the disk or the bucket behind the interface."""
    if isinstance(store, S3BlobStore):
        pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        assert all(k.startswith(f"{store.prefix}sha256/") for k in keys), keys
        return sorted(k.rsplit("/", 1)[1] for k in keys)
    assert isinstance(store, FileBlobStore)
    return sorted(p.name for p in (store.root / "sha256").rglob("*") if p.is_file())


def staged_bytes(store: BlobStore) -> list[Path]:
    assert isinstance(store, FileBlobStore | S3BlobStore)
    return [p for p in store.staging.root.rglob("*") if p.is_file() and p.stat().st_size]


def test_blob_is_stored_under_its_sha256(blob_store: BlobStore) -> None:
    data = os.urandom(3 << 20)
    blob = blob_store.put_stream(io.BytesIO(data), max_bytes=10 << 20)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.size_bytes == blob_store.size(blob.sha256) == len(data)
    assert stored_digests(blob_store) == [blob.sha256]
    assert b"".join(blob_store.open_chunks(blob.sha256)) == data
    assert staged_bytes(blob_store) == []


def test_disk_blob_is_a_file_named_by_its_sha256(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    data = os.urandom(1 << 16)
    blob = store.put_stream(io.BytesIO(data), max_bytes=1 << 20)
    assert store.path(blob.sha256).read_bytes() == data


def test_a_blob_larger_than_a_part_goes_up_in_parts_and_comes_back_whole(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    data = os.urandom(12 << 20)  # three parts of the test bucket's 5 MiB
    source = tmp_path / "model.onnx"
    source.write_bytes(data)
    blob = blob_store.put_file(source)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    copy = blob_store.fetch_to(blob.sha256, tmp_path / "copy.onnx")
    assert copy.read_bytes() == data
    assert source.read_bytes() == data, "the uploaded file is left as it was"
    if isinstance(blob_store, S3BlobStore):  # S3 names a multipart object's ETag by its parts
        key = blob_store.key(blob.sha256)
        head = blob_store.client.head_object(Bucket=blob_store.bucket, Key=key)
        assert head["ETag"].strip('"').endswith("-3"), head["ETag"]


def test_oversized_stream_is_refused_and_leaves_nothing(blob_store: BlobStore) -> None:
    with pytest.raises(BlobTooLarge):
        blob_store.put_stream(io.BytesIO(b"x" * 5000), max_bytes=4096)
    # Only this process's locked session folder remains in tmp/, empty of upload bytes.
    assert staged_bytes(blob_store) == []
    assert stored_digests(blob_store) == []


def test_the_same_bytes_twice_are_one_blob_and_delete_removes_it(blob_store: BlobStore) -> None:
    first = blob_store.put_stream(io.BytesIO(b"weights"), max_bytes=100)
    second = blob_store.put_stream(io.BytesIO(b"weights"), max_bytes=100)
    assert first == second and stored_digests(blob_store) == [first.sha256]
    blob_store.delete(first.sha256)
    assert not blob_store.exists(first.sha256) and stored_digests(blob_store) == []
    blob_store.delete(first.sha256)  # deleting twice is harmless: a refused upload may race


def test_a_missing_blob_is_reported_as_missing(blob_store: BlobStore, tmp_path: Path) -> None:
    absent = hashlib.sha256(b"never stored").hexdigest()
    assert not blob_store.exists(absent)
    with pytest.raises(BlobMissing):
        blob_store.size(absent)
    with pytest.raises(BlobMissing):
        list(blob_store.open_chunks(absent))
    with pytest.raises(BlobMissing):
        blob_store.fetch_to(absent, tmp_path / "absent")
    with pytest.raises(BlobMissing), blob_store.as_local_file(absent):
        pass


def test_a_local_file_holds_the_blob_inside_its_block(blob_store: BlobStore) -> None:
    data = os.urandom(1 << 16)
    blob = blob_store.put_stream(io.BytesIO(data), max_bytes=1 << 20)
    with blob_store.as_local_file(blob.sha256) as path:
        assert path.read_bytes() == data
    assert staged_bytes(blob_store) == [], "a fetched copy is removed after the block"
    assert blob_store.exists(blob.sha256)


def test_a_user_string_is_never_a_path_or_key(blob_store: BlobStore) -> None:
    for evil in ("../../etc/passwd", "/etc/passwd", "a" * 64 + "/..", "G" * 64):
        with pytest.raises(ValueError):
            blob_store.exists(evil)
        with pytest.raises(ValueError):
            blob_store.delete(evil)


def test_stale_partial_uploads_are_cleared_but_live_ones_kept(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    stale = tmp_path / "tmp" / "upload-stale"
    live = tmp_path / "tmp" / "upload-live"
    stale.write_bytes(b"partial")
    live.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert clear_stale_temp_files(blob_store) == 1
    assert not stale.exists() and live.exists()


def test_the_store_is_ready_while_its_bucket_answers(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.new_bucket()
    open_blob_store(f"s3://{bucket}", tmp_path, s3_server.endpoint_url).ping()
    gone = open_blob_store(f"s3://{bucket}-gone", tmp_path, s3_server.endpoint_url)
    with pytest.raises(ClientError):
        gone.ping()


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://models", "models", ""),
        ("s3://models/", "models", ""),
        ("s3://models/shears/blobs/", "models", "shears/blobs/"),
    ],
)
def test_an_s3_url_names_a_bucket_and_a_key_prefix(url: str, bucket: str, prefix: str) -> None:
    assert parse_s3_url(url) == (bucket, prefix)


@pytest.mark.parametrize("url", ["s3:///prefix", "https://bucket/x", "s3://bucket/x?y=1"])
def test_anything_but_an_s3_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_s3_url(url)


@pytest.mark.parametrize("url", ["file:///srv/blobs", "s3://", "s3://bucket?versionId=1"])
def test_a_blob_url_other_than_s3_stops_the_settings_from_loading(url: str) -> None:
    with pytest.raises(ValidationError, match="blob_url"):
        Settings(blob_url=url)


def test_without_a_blob_url_blobs_are_files_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = open_blob_store(settings.blob_url, settings.blob_dir, settings.s3_endpoint_url)
    assert isinstance(store, FileBlobStore) and store.root == tmp_path / "blobs"


@pytest.mark.parametrize("read", ["open_chunks", "fetch_to"])
def test_a_download_cut_by_the_network_resumes_and_comes_back_whole(
    read: str, s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/blobs"
    data = os.urandom(6 << 20)
    direct = S3BlobStore.from_url(url, tmp_path, s3_server.endpoint_url, part_bytes=5 << 20)
    blob = direct.put_stream(io.BytesIO(data), max_bytes=len(data))
    upstream_port = int(s3_server.endpoint_url.rsplit(":", 1)[1])
    with cutting_proxy(upstream_port, cut_after=2 << 20) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.port}"
        store = S3BlobStore.from_url(url, tmp_path, endpoint, part_bytes=5 << 20)
        if read == "open_chunks":  # the API's download
            received = b"".join(store.open_chunks(blob.sha256))
        else:  # a worker's copy: concurrent ranged GETs
            received = store.fetch_to(blob.sha256, tmp_path / "copy").read_bytes()
    assert proxy.cuts == 1
    assert hashlib.sha256(received).hexdigest() == blob.sha256


def test_an_adopted_file_is_stored_whole_and_the_same_bytes_twice_are_one_blob(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    data = os.urandom(3 << 20)
    for name in ("first.onnx", "second.onnx"):
        (tmp_path / name).write_bytes(data)
        blob = blob_store.adopt_file(tmp_path / name)
        assert blob.sha256 == hashlib.sha256(data).hexdigest()
        assert blob.size_bytes == len(data)
    assert stored_digests(blob_store) == [blob.sha256]
    assert b"".join(blob_store.open_chunks(blob.sha256)) == data
    assert staged_bytes(blob_store) == []


def test_a_disk_store_adopts_a_file_by_link_without_copying_it(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    artifact = tmp_path / "work" / "model.onnx"
    artifact.parent.mkdir()
    artifact.write_bytes(os.urandom(1 << 20))
    blob = store.adopt_file(artifact)
    stored = store.path(blob.sha256)
    assert stored.stat().st_ino == artifact.stat().st_ino, "the artifact itself, not a copy"
    assert not stored.stat().st_mode & 0o222, "read-only: the inode is shared with the work dir"
    artifact.unlink()  # the worker removes its work dir next
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == blob.sha256


def test_an_adopted_file_of_many_read_chunks_hashes_to_its_sha256(tmp_path: Path) -> None:
    # Read in 8 MiB chunks with the next asked of the disk ahead: the digest is every byte's.
    store = FileBlobStore(tmp_path / "blobs")
    artifact = tmp_path / "model.onnx"
    data = os.urandom((17 << 20) + 12345)
    artifact.write_bytes(data)
    blob = store.adopt_file(artifact)
    assert (blob.sha256, blob.size_bytes) == (hashlib.sha256(data).hexdigest(), len(data))


def test_a_file_with_another_name_is_copied_not_linked(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"weights")
    os.link(artifact, tmp_path / "another-name")  # whoever holds it could still change it
    blob = store.adopt_file(artifact)
    assert store.path(blob.sha256).stat().st_ino != artifact.stat().st_ino
    assert store.path(blob.sha256).read_bytes() == b"weights"


def test_a_crash_while_an_adopted_file_is_hashed_leaves_no_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(os.urandom(1 << 20))

    def read_fails(f: object) -> None:
        raise OSError("the disk went away mid-read")

    monkeypatch.setattr("storage.blobs._hashed", read_fails)
    with pytest.raises(OSError, match="mid-read"):
        store.adopt_file(artifact)
    assert stored_digests(store) == []
    assert staged_bytes(store) == []
