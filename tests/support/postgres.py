"""A private PostgreSQL database per test, created on a server and dropped after.

The server: `SHEARS_TEST_POSTGRES_DSN` when set; else the local one on 127.0.0.1:5432 (trust
auth for `postgres`) when it answers; else a private server that this test process starts
with Debian's `initdb` and `pg_ctl` in a temporary directory on a free port, the way the
tests start their own redis-server. `SHEARS_TEST_POSTGRES=private` skips the local one.
The tests fail, never skip, when none of these can be had.
"""

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from glob import glob
from pathlib import Path

import psycopg2
from psycopg2 import sql

LOCAL_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


class PostgresMissing(AssertionError):
    """The PostgreSQL tests fail, never skip, when no server can be had."""


@cache
def admin_dsn() -> str:
    """The DSN of a server where `postgres` may create databases (started once if needed)."""
    given = os.environ.get("SHEARS_TEST_POSTGRES_DSN")
    if given:
        return given
    if os.environ.get("SHEARS_TEST_POSTGRES") != "private" and _answers(LOCAL_DSN):
        return LOCAL_DSN
    return PrivateServer.start().dsn


def _answers(dsn: str) -> bool:
    try:
        psycopg2.connect(dsn, connect_timeout=3).close()
    except psycopg2.OperationalError:
        return False
    return True


def _binary(name: str) -> str:
    """Debian keeps the server binaries off PATH, in /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name) or next(
        iter(sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise PostgresMissing(
            f"no PostgreSQL server on 127.0.0.1:5432 and no `{name}` to start one: install "
            "Debian's `postgresql` package (`make test` does with apt)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateServer:
    """`initdb` + `pg_ctl start` in a temporary directory; stopped when the tests exit."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"

    @classmethod
    def start(cls) -> "PrivateServer":
        root = Path(tempfile.mkdtemp(prefix="shears-test-pg-"))
        server = cls(root, _free_port())
        server._run(_binary("initdb"), "-D", str(root / "data"), "-U", "postgres",
                    "--auth=trust", "--no-sync", "-E", "UTF8")  # fmt: skip
        atexit.register(server.stop)
        options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        server._run(_binary("pg_ctl"), "-D", str(root / "data"), "-o", options,
                    "-l", str(root / "server.log"), "-w", "-t", "60", "start")  # fmt: skip
        return server

    def stop(self) -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop",
                  check=False)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, *argv: str, check: bool = True) -> None:
        # initdb and the server refuse to run as root: hand them to an unprivileged user.
        if os.geteuid() == 0:
            user = "postgres" if _user_exists("postgres") else "nobody"
            shutil.chown(self.root, user)
            self.root.chmod(0o700)
            argv = ("runuser", "-u", user, "--", *argv)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresMissing(
                f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}{tail}"
            )


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _admin_connection() -> "psycopg2.extensions.connection":
    dsn = admin_dsn()
    try:
        conn = psycopg2.connect(dsn, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise PostgresMissing(f"cannot reach PostgreSQL with {dsn!r} ({exc})") from exc
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
