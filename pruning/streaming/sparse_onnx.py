"""The ``onnx_sparse`` output of an archived model, written tensor by tensor.

``pruning.formats.onnx_sparse`` builds the sparse model in memory and checks it in ONNX
Runtime, which a model with external data (gigabytes) cannot afford. Here the pruned model's
tensors are read one at a time from the pruned files (page cache, no copy) and written to
one data file: as COO ``sparse_initializer`` (values, then int64 linear indices, both
external data) when that is smaller than the dense bytes, as a dense external initializer
otherwise. The graph is small and saved whole; the two files are packed into the upload's
archive kind. ONNX Runtime loads sparse initializers held as external data (tried with 1.x:
it densifies them at load); the ONNX checker's shape inference cannot read them, so the
model is not passed through the checker, and it is not run here either (the result says so).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper

from pruning.formats.encodings import count_nonzero_bits, nonzero_mask
from pruning.formats.onnx_sparse import RUNTIME_NOTE
from pruning.models.onnx_archive import pack
from pruning.streaming.layout import INLINE_BYTES, Layout, Region
from pruning.streaming.mapped import map_region

_SLICE = 1 << 20  # elements encoded at a time
_DATA = "model.onnx.data"


def write_sparse_archive(
    layout: Layout, pruned_file: Callable[[Path], Path], packaging: str, out_dir: Path
) -> tuple[Path, dict[str, Any]]:
    """``model.sparse.<packaging>`` and the storage report's note on it. ``pruned_file``
    maps a file of ``layout`` to its pruned copy (same offsets)."""
    folder = out_dir / "sparse"
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.ModelProto()
    model.CopyFrom(layout.skeleton)
    graph = model.graph
    outputs = {o.name for o in graph.output}
    sparse, not_smaller, fallbacks = [], [], []
    kept: list[TensorProto] = []
    with (folder / _DATA).open("wb") as data:
        for init in graph.initializer:
            region = layout.regions.get(init.name)
            inline = init.data_location != TensorProto.EXTERNAL
            if region is None or (inline and region.nbytes <= INLINE_BYTES):
                kept.append(init)  # its data is in the graph
                continue
            values = map_region(replace(region, file=pruned_file(region.file))).reshape(-1)
            nonzeros = count_nonzero_bits(values)
            smaller = nonzeros * (values.dtype.itemsize + 8) < region.nbytes
            if smaller and init.name in outputs:
                reason = "a graph output: onnxruntime would return it as a SparseTensor"
                fallbacks.append({"name": init.name, "reason": reason})
            if smaller and init.name not in outputs and len(init.dims):
                graph.sparse_initializer.append(_sparse(init, region, values, nonzeros, data))
                sparse.append(init.name)
            else:
                if not smaller:
                    not_smaller.append(init.name)
                kept.append(_dense(init, values, data))
            del values
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.save_model(model, str(folder / "model.onnx"))
    archive = pack(folder / "model.onnx", packaging, out_dir / f"model.sparse.{packaging}")
    shutil.rmtree(folder)
    note = {
        "path": str(archive),
        "sparse": sparse,
        "not_smaller": not_smaller,
        "fallbacks": fallbacks,
        "max_relative_error": None,
        "runtime": "not run: the model is written tensor by tensor and not loaded whole",
        "note": RUNTIME_NOTE,
    }
    return archive, note


def _sparse(
    init: TensorProto, region: Region, values: np.ndarray, nonzeros: int, data: BinaryIO
) -> onnx.SparseTensorProto:
    """Values then indices appended to ``data``, each slice by slice (two reads of the
    tensor's pages, both from the page cache)."""
    start = data.tell()
    for offset in range(0, values.size, _SLICE):
        part = values[offset : offset + _SLICE]
        data.write(part[nonzero_mask(part)].tobytes())
    middle = data.tell()
    for offset in range(0, values.size, _SLICE):
        part = values[offset : offset + _SLICE]
        data.write((np.flatnonzero(nonzero_mask(part)) + offset).astype("<i8").tobytes())
    end = data.tell()
    kept = _external(init.name, init.data_type, [nonzeros], start, middle - start)
    indices = _external(f"{init.name}_indices", TensorProto.INT64, [nonzeros], middle, end - middle)
    return helper.make_sparse_tensor(kept, indices, list(region.shape))


def _dense(init: TensorProto, values: np.ndarray, data: BinaryIO) -> TensorProto:
    start = data.tell()
    for offset in range(0, values.size, _SLICE):
        data.write(values[offset : offset + _SLICE].tobytes())
    dense = _external(init.name, init.data_type, list(init.dims), start, data.tell() - start)
    dense.doc_string = init.doc_string
    return dense


def _external(name: str, dtype: int, dims: list[int], offset: int, length: int) -> TensorProto:
    tensor = TensorProto(name=name, data_type=dtype, dims=dims)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", _DATA), ("offset", str(offset)), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)
    return tensor
