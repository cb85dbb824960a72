"""A private PostgreSQL database per test, created on the local server and dropped after."""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2 import sql

# The development machines run PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres`;
# SHEARS_TEST_POSTGRES_DSN points the tests elsewhere.
ADMIN_DSN = os.environ.get(
    "SHEARS_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


class PostgresMissing(AssertionError):
    """The PostgreSQL tests fail, never skip, when the server is not there."""


def _admin_connection() -> "psycopg2.extensions.connection":
    try:
        conn = psycopg2.connect(ADMIN_DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise PostgresMissing(
            f"cannot reach PostgreSQL with {ADMIN_DSN!r} ({exc}); start it, or set "
            "SHEARS_TEST_POSTGRES_DSN to a server where this user may create databases"
        ) from exc
    conn.autocommit = True
    return conn


def _sqlalchemy_url(dsn_params: dict[str, str], database: str) -> str:
    host = dsn_params.get("host", "127.0.0.1")
    port = dsn_params.get("port", "5432")
    user = dsn_params.get("user", "postgres")
    password = dsn_params.get("password")
    auth = f"{user}:{password}" if password else user
    return f"postgresql+psycopg2://{auth}@{host}:{port}/{database}"


@contextmanager
def private_database() -> Iterator[str]:
    """Yield the SQLAlchemy URL of a fresh, empty database; drop it afterwards."""
    name = f"shears_test_{secrets.token_hex(6)}"
    conn = _admin_connection()
    params = conn.get_dsn_parameters()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield _sqlalchemy_url(params, name)
    finally:
        with conn.cursor() as cur:
            # FORCE (PostgreSQL 13+) ends sessions a killed worker may have left open.
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        conn.close()
