"""A private redis-server on a free port, configured like production (append-only file on)."""

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.processes import ManagedProcess, ProcessRegistry, free_port

REDIS_BINARY = "redis-server"


class RedisMissing(AssertionError):
    """The integration tests need a real redis-server; they fail, never skip, without one."""


def redis_binary() -> str:
    found = shutil.which(REDIS_BINARY) or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise RedisMissing(
            "redis-server is not installed or not on PATH: install it (apt-get install "
            "redis-server, or brew install redis) to run the integration tests"
        )
    return found


@dataclass
class RedisServer:
    """Start, stop and restart keep the same port and data dir, so the AOF survives."""

    registry: ProcessRegistry
    data_dir: Path
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> "redis.Redis":
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> "RedisServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = self.registry.start(f"redis-{self.port}", argv, env={})
        self.process.wait_for(self._answers_ping, timeout=20, what="answering PING")
        return self

    def stop(self) -> None:
        """A polite stop: redis fsyncs the AOF on SIGTERM."""
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _answers_ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.exceptions.ConnectionError:
            return False
        except redis.exceptions.BusyLoadingError:
            return False
