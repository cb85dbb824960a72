"""Each test gets a fresh job store: SQLite in a temp dir, and a private PostgreSQL database
(tests/support/postgres.py: the local server when one answers, else one the tests start);
and a fresh blob store: files in a temp dir, and a bucket on moto's S3 server."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import BlobStore, JobStore, connect, open_blob_store
from storage.s3_blobs import S3BlobStore
from tests.support.postgres import private_database
from tests.support.s3_server import CREDENTIALS, S3Server


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        db = connect(f"sqlite:///{tmp_path / 'shears.db'}")
        yield JobStore(db)
        db.engine.dispose()
        return
    with private_database() as url:
        db = connect(url)
        try:
            yield JobStore(db)
        finally:
            db.engine.dispose()


@pytest.fixture(params=["local", "s3"])
def blob_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> BlobStore:
    """Each backend behind the one interface: files under tmp_path, or a fresh bucket on
    moto's S3 server (partial uploads staged under tmp_path either way)."""
    if request.param == "local":
        return open_blob_store(None, tmp_path, None)
    server: S3Server = request.getfixturevalue("s3_server")
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    # Parts of S3's 5 MiB minimum, so a small test blob is a multipart upload.
    return S3BlobStore.from_url(
        f"s3://{server.new_bucket()}/blobs", tmp_path, server.endpoint_url, part_bytes=5 << 20
    )
