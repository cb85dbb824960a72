"""Input shapes that ``torch.jit.trace`` records in the archive (``traced_inputs.pkl``).

Since torch 2.0, trace stores its example inputs (``_store_inputs=True``) and jit.save writes
them as a pickle of tensor *metadata* whose storages are left empty. Graph input types lose
their shapes on save/load, so this is the only shape a traced model keeps. The pickle is
read with an unpickler that resolves only the handful of names it may contain and builds
(dtype, shape) pairs from them: nothing in the archive is executed.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

from pruning.tensors import Dim

STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


class _StorageType:
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype


class _TensorMeta:
    def __init__(self, dtype: str, shape: list[Dim]) -> None:
        self.dtype = dtype
        self.shape = shape


def _rebuild_tensor(storage: str, _offset: int, size: tuple[int, ...], *_rest: Any) -> _TensorMeta:
    return _TensorMeta(storage, [int(d) for d in size])


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch.jit._pickle", "restore_type_tag"):
            return lambda value, _tag: value
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        # ("storage", storage type, key, location, numel): the storage type names the dtype
        if not isinstance(pid, tuple) or len(pid) < 2 or not isinstance(pid[1], _StorageType):
            raise pickle.UnpicklingError("unexpected persistent id")
        return pid[1].dtype


def read_traced_inputs(path: Path) -> list[tuple[str, list[Dim]]] | None:
    """(dtype, shape) of each example input ``forward`` was traced with, or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/traced_inputs.pkl")), None)
            if name is None:
                return None
            data = archive.read(name)
        loaded = _MetadataUnpickler(io.BytesIO(data)).load()
    except Exception:  # any surprise in an optional hint means "shapes unknown"
        return None
    items = loaded.get("forward") if isinstance(loaded, dict) else None
    if not items or not all(isinstance(i, _TensorMeta) for i in items):
        return None
    return [(i.dtype, i.shape) for i in items]
