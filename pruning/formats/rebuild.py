"""A full model again, from the original model file and a sparse npz of its pruned weights.

The npz carries only weights; the graph (ONNX) or code (TorchScript) comes from the model the
user uploaded. Every stored tensor must match a weight of that model by name, shape and
dtype: a silent partial rebuild would hand back a model that is neither dense nor pruned.
TorchScript is code: load it only where untrusted models may run (the sandboxed child).
"""

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from pruning.formats.errors import ModelMismatch, SparseFormatError
from pruning.formats.sparse_npz import decode_sparse_npz

ModelFormat = Literal["onnx", "torchscript"]


def rebuild_model(
    model_path: Path, npz_path: Path, out_path: Path, model_format: ModelFormat
) -> Path:
    """Write to `out_path` the model at `model_path` with the weights stored in `npz_path`."""
    tensors = decode_sparse_npz(npz_path)
    if model_format == "onnx":
        return rebuild_onnx(model_path, tensors, out_path)
    if model_format == "torchscript":
        return rebuild_torchscript(model_path, tensors, out_path)
    raise SparseFormatError(f"unknown model format {model_format!r}: use onnx or torchscript")


def rebuild_onnx(
    model_path: Path, tensors: Mapping[str, npt.NDArray[np.generic]], out_path: Path
) -> Path:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path), load_external_data=False)
    by_name = {init.name: init for init in model.graph.initializer}
    for name, array in tensors.items():
        if name not in by_name:
            raise ModelMismatch(f"{name!r} is not an initializer of {model_path.name}")
        if by_name[name].data_location == onnx.TensorProto.EXTERNAL:
            raise ModelMismatch(f"{name!r} is stored as external data, which Shears refuses")
        _require_same(name, numpy_helper.to_array(by_name[name]), array)
        by_name[name].CopyFrom(numpy_helper.from_array(array, name))
    partial = _partial(out_path)
    onnx.save(model, str(partial))
    os.replace(partial, out_path)
    return out_path


def rebuild_torchscript(
    model_path: Path, tensors: Mapping[str, npt.NDArray[np.generic]], out_path: Path
) -> Path:
    import torch

    with warnings.catch_warnings():
        # torch deprecates TorchScript in favour of torch.export; users still upload it.
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(model_path), map_location="cpu")  # type: ignore[no-untyped-call]
    targets = dict(module.named_parameters()) | dict(module.named_buffers())
    with torch.no_grad():
        for name, array in tensors.items():
            if name not in targets:
                raise ModelMismatch(f"{name!r} is not a parameter of {model_path.name}")
            target = targets[name]
            _require_same(name, target.detach().numpy(), array)
            target.copy_(torch.from_numpy(np.ascontiguousarray(array)))
    partial = _partial(out_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(module, str(partial))
    os.replace(partial, out_path)
    return out_path


def _require_same(
    name: str, original: npt.NDArray[np.generic], stored: npt.NDArray[np.generic]
) -> None:
    if original.shape != stored.shape or original.dtype != stored.dtype:
        raise ModelMismatch(
            f"{name!r} is {stored.dtype}{list(stored.shape)} in the npz but "
            f"{original.dtype}{list(original.shape)} in the model"
        )


def _partial(out_path: Path) -> Path:
    return out_path.with_name(f".{out_path.name}.partial")
