"""Model formats: detected from the file's content, opened through one adapter each."""

from __future__ import annotations

import zipfile
from pathlib import Path

from pruning.errors import InvalidModel
from pruning.models.base import ModelAdapter, Runner
from pruning.models.onnx_archive import archive_kind
from pruning.models.onnx_model import OnnxModel
from pruning.models.torchscript_model import TorchScriptModel

ADAPTERS: dict[str, type[ModelAdapter]] = {
    OnnxModel.format: OnnxModel,
    TorchScriptModel.format: TorchScriptModel,
}
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # TorchScript archives are zip files
NPY_MAGIC = b"\x93NUMPY"


def detect_format(path: Path, declared: str | None = None) -> str:
    """ "onnx" for a .zip or .tar holding an .onnx model and its data files, "torchscript"
    for any other zip archive, otherwise "onnx" (protobuf has no magic number; the ONNX
    parser and checker decide). A declared format must agree with the content."""
    if declared is not None and declared not in ADAPTERS:
        raise InvalidModel(f"format must be one of {sorted(ADAPTERS)}, got {declared!r}")
    try:
        with path.open("rb") as f:
            head = f.read(len(NPY_MAGIC))
    except OSError as exc:
        raise InvalidModel(f"cannot read the model file: {exc.strerror}") from exc
    if not head:
        raise InvalidModel("the file is empty")
    _refuse_numpy_data(path, head)
    detected = OnnxModel.format
    if head.startswith(ZIP_MAGIC) and archive_kind(path) is None:
        detected = TorchScriptModel.format
    if declared is not None and declared != detected:
        raise InvalidModel(
            f"format {declared!r} was given but the content is {_looks_like(detected)}; "
            "leave format out or upload the matching file"
        )
    return detected


def _refuse_numpy_data(path: Path, head: bytes) -> None:
    """Data given where a model belongs is a common slip (`-F file=@data.npz` on /v1/models);
    an .npz is a zip archive too, and the TorchScript loader would only say that it is a
    broken checkpoint, so name what the file is instead."""
    if head.startswith(NPY_MAGIC):
        raise InvalidModel(_DATA_NOT_MODEL.format(what="a NumPy array (.npy)"))
    if not head.startswith(ZIP_MAGIC):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return  # the TorchScript loader names the damage
    if names and all(name.endswith(".npy") for name in names):
        arrays = ", ".join(name.removesuffix(".npy")[:40] for name in names[:8])
        what = f"a NumPy archive (.npz) of arrays {arrays}"
        raise InvalidModel(_DATA_NOT_MODEL.format(what=what))


_DATA_NOT_MODEL = (
    "this looks like {what}: a dataset, not a model; upload it as a dataset "
    "(POST /v1/datasets, `shears submit --data`) and give an ONNX file or a TorchScript "
    "archive (torch.jit.save) as the model"
)


def _looks_like(fmt: str) -> str:
    return "a zip archive (TorchScript)" if fmt == "torchscript" else "not a zip archive (ONNX)"


def open_model(path: Path, fmt: str | None = None, probe_runtime: bool = True) -> ModelAdapter:
    return ADAPTERS[detect_format(path, fmt)].load(path, probe_runtime)


__all__ = ["ADAPTERS", "ModelAdapter", "Runner", "detect_format", "open_model"]
