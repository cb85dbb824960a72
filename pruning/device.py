"""Where the engine's dense linear algebra runs (calibration statistics, the SparseGPT solve):
the worker's ``device`` setting, ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``
or ``cuda`` (``cuda:N`` for one GPU). Weights stay on the CPU; results come back there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from pruning.errors import Unsupported

DEVICES = ("auto", "cpu", "cuda")
SETTING = "device (SHEARS_DEVICE)"


def resolve_device(name: str) -> torch.device:
    """The ``torch.device`` for a setting value; a GPU asked for and absent is an error that
    names the setting, not a silent fall back to the CPU."""
    kind = name.split(":", 1)[0]
    if kind not in DEVICES or (kind != "cuda" and ":" in name):
        raise Unsupported(
            f"{SETTING} must be one of auto, cpu, cuda or cuda:N, not {name!r}", field="device"
        )
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise Unsupported(
            f"{SETTING} is {name!r} but torch sees no CUDA GPU on this worker; "
            "set it to 'auto' or 'cpu'",
            field="device",
        )
    try:
        return torch.device(name)
    except RuntimeError as exc:  # "cuda:x"
        raise Unsupported(f"{SETTING}: {exc}", field="device") from exc


_CURRENT: ContextVar[str] = ContextVar("shears_device", default="cpu")


@contextmanager
def compute_device(name: str) -> Iterator[None]:
    """Run the engine's calibrated methods on ``name`` inside the block. A context, not a
    parameter threaded through every stage of ``pruning.prune``: only the methods that do
    dense algebra read it (``current_device``), the rest of the engine never sees it."""
    resolve_device(name)  # a wrong setting fails the job before any work
    token = _CURRENT.set(name)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_device() -> str:
    return _CURRENT.get()
