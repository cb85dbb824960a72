"""A job store created by an older release gains the columns added since, keeps its rows, and
serves them: starting a new release on an old database is the whole upgrade."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage import JobStore, connect
from storage.database import jobs, models
from tests.support.postgres import private_database


@contextmanager
def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with private_database() as url:
        yield url


def create_without(url: str, table: sa.Table, column: str) -> sa.Engine:
    """`table` as an older release created it: without `column`."""
    old = sa.MetaData()
    sa.Table(table.name, old, *(c._copy() for c in table.columns if c.name != column))
    engine = sa.create_engine(url)
    old.create_all(engine)
    return engine


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_old_models_table_gains_error_code_and_keeps_its_rows(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        # The models table as the first release created it: no error_code.
        engine = create_without(url, models, "error_code")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO models (id, tenant, name, sha256, size_bytes, status, created_at)"
                    " VALUES ('mdl_1', 't', 'm.onnx', 'ab', 3, 'invalid', '2026-01-01 00:00:00')"
                )
            )
        engine.dispose()

        db = connect(url)
        try:
            record = JobStore(db).get_model("t", "mdl_1")
            assert (record.status, record.error_code) == ("invalid", None)
            columns = {c["name"] for c in sa.inspect(db.engine).get_columns("models")}
            assert "error_code" in columns
            connect(url).engine.dispose()  # a second start finds nothing to add
        finally:
            db.engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_old_jobs_table_gains_manifest_sha256_and_its_jobs_still_list(
    kind: str, tmp_path: Path
) -> None:
    with database_url(kind, tmp_path) as url:
        # The jobs table before reproducible jobs (issue 17): no manifest_sha256.
        engine = create_without(url, jobs, "manifest_sha256")
        engine.dispose()

        db = connect(url)
        try:
            store = JobStore(db)
            earlier, _ = store.create_job("t", "mdl_1", {"sparsity": 0.5})
            later, _ = store.create_job("t", "mdl_1", {"sparsity": 0.5}, manifest_sha256="c" * 64)
            assert earlier.manifest_sha256 is None
            assert {j.id for j in store.list_jobs("t", 10, None)[0]} == {later.id, earlier.id}
            found, _ = store.list_jobs("t", 10, None, manifest_sha256="c" * 64)
            assert [j.id for j in found] == [later.id]
        finally:
            db.engine.dispose()
