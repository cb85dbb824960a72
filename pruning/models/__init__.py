"""Model formats: detected from the file's content, opened through one adapter each."""

from __future__ import annotations

from pathlib import Path

from pruning.errors import InvalidModel
from pruning.models.base import ModelAdapter, Runner
from pruning.models.onnx_model import OnnxModel
from pruning.models.torchscript_model import TorchScriptModel

ADAPTERS: dict[str, type[ModelAdapter]] = {
    OnnxModel.format: OnnxModel,
    TorchScriptModel.format: TorchScriptModel,
}
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # TorchScript archives are zip files


def detect_format(path: Path, declared: str | None = None) -> str:
    """ "torchscript" for a zip archive, otherwise "onnx" (protobuf has no magic number;
    the ONNX parser and checker decide). A declared format must agree with the content."""
    if declared is not None and declared not in ADAPTERS:
        raise InvalidModel(f"format must be one of {sorted(ADAPTERS)}, got {declared!r}")
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise InvalidModel(f"cannot read the model file: {exc.strerror}") from exc
    if not head:
        raise InvalidModel("the file is empty")
    detected = TorchScriptModel.format if head.startswith(ZIP_MAGIC) else OnnxModel.format
    if declared is not None and declared != detected:
        raise InvalidModel(
            f"format {declared!r} was given but the content is {_looks_like(detected)}; "
            "leave format out or upload the matching file"
        )
    return detected


def _looks_like(fmt: str) -> str:
    return "a zip archive (TorchScript)" if fmt == "torchscript" else "not a zip archive (ONNX)"


def open_model(path: Path, fmt: str | None = None, probe_runtime: bool = True) -> ModelAdapter:
    return ADAPTERS[detect_format(path, fmt)].load(path, probe_runtime)


__all__ = ["ADAPTERS", "ModelAdapter", "Runner", "detect_format", "open_model"]
