"""What the engine's child inherits: no secrets, its own temp dir, the project importable."""

from pathlib import Path

import pytest

from worker.sandbox import child_env


def test_child_environment_carries_no_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHEARS_DATABASE_URL", "postgresql://shears:hunter2@db/shears")
    monkeypatch.setenv("SHEARS_BROKER_URL", "redis://:hunter2@redis:6379/0")
    monkeypatch.setenv("SHEARS_API_KEYS", "key-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")

    env = child_env(tmp_path)

    assert not any("hunter2" in value or "key-1" in value for value in env.values())
    assert env["OMP_NUM_THREADS"] == "3"
    assert env["TMPDIR"] == str(tmp_path / "tmp")
    assert str(Path(__file__).resolve().parents[2]) in env["PYTHONPATH"].split(":")
