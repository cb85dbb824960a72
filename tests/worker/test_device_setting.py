"""The worker's ``device`` setting (issue 14): read from SHEARS_DEVICE, checked at startup,
and carried to the sandboxed child together with the GPUs it may see."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shears_config import Settings
from worker.sandbox import child_env


def test_device_defaults_to_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHEARS_DEVICE", raising=False)
    assert Settings(data_dir=tmp_path).device == "auto"


@pytest.mark.parametrize("value", ["cpu", "cuda", "cuda:1", "auto"])
def test_device_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SHEARS_DEVICE", value)
    assert Settings(data_dir=tmp_path).device == value


@pytest.mark.parametrize("value", ["gpu", "tpu", "cuda:", "CPU "])
def test_unknown_devices_are_refused_at_startup(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValidationError, match="device"):
        Settings(data_dir=tmp_path, device=value)


def test_the_child_sees_the_gpus_the_worker_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert child_env(tmp_path)["CUDA_VISIBLE_DEVICES"] == "1"
