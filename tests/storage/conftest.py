"""Each test gets a fresh job store: SQLite in a temp dir, and a private PostgreSQL database
(tests/support/postgres.py: the local server when one answers, else one the tests start)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import JobStore, connect
from tests.support.postgres import private_database


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
