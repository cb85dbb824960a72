"""A pruned ONNX model whose sparse weights live in `graph.sparse_initializer`.

Each initializer of the main graph becomes a COO `SparseTensorProto` with linearised int64
indices (ONNX requires int64, ascending, no duplicates) when that proto is smaller than the
dense one: 8 bytes of index plus the value per nonzero, so float32 pays off below about 1/3
density. The written model is checked: the ONNX checker passes, and ONNX Runtime loads it and
computes the same outputs as the dense-with-zeros model. A tensor that fails the check is kept
dense, and the result says why.

What ONNX Runtime 1.32 does with sparse initializers, measured and read in its source
(`Graph::Graph` in onnxruntime/core/graph/graph.cc):
- it converts every sparse initializer to a dense tensor when it loads the model, so the
  file is smaller but memory use and latency are those of the dense model;
- a sparse initializer that is itself a graph output comes back from `run` as an
  `onnxruntime.SparseTensor` object, not an array: such tensors stay dense;
- rank-0 and zero-sized tensors are rejected by the ONNX checker (and never smaller anyway);
- 4-bit types (int4, uint4, float4e2m1) fail to load: its conversion miscounts packed values
  ("SparseTensorProtoToDenseTensorProto ... values data size does not match expected");
  the check catches this and the tensor stays dense;
- the other dtypes tried (float16/32/64, bfloat16, float8e4m3fn/e5m2, int8/32/64, uint8,
  bool) load and densify exactly, including -0.0; so do initializers also listed as graph
  inputs and ones used from inside If/Loop bodies.
Initializers of subgraphs are left as they are.
"""

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pruning.formats import ort_check
from pruning.formats.encodings import nonzero_mask

RUNTIME_NOTE = (
    "ONNX Runtime converts sparse initializers to dense tensors when it loads the model: "
    "the file is smaller, memory use and latency are those of the dense model"
)


@dataclass(frozen=True)
class Fallback:
    """A tensor that would have been smaller as sparse but was kept dense, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class OnnxSparseResult:
    path: Path
    sparse: tuple[str, ...]
    not_smaller: tuple[str, ...]
    fallbacks: tuple[Fallback, ...]
    max_relative_error: float
    runtime: str
    note: str = RUNTIME_NOTE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"path": str(self.path)}


@dataclass
class _Plan:
    candidates: dict[str, Any] = field(default_factory=dict)  # name -> SparseTensorProto
    not_smaller: list[str] = field(default_factory=list)
    fallbacks: list[Fallback] = field(default_factory=list)


def write_onnx_sparse(
    model_path: Path,
    out_path: Path,
    *,
    feeds: ort_check.Feeds | None = None,
    rtol: float = 1e-6,
) -> OnnxSparseResult:
    """Write `out_path`; `feeds` default to random inputs of the declared shapes."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    dense_bytes = model.SerializeToString()
    feeds = feeds if feeds is not None else ort_check.example_feeds(dense_bytes)
    reference = ort_check.run_reference(dense_bytes, feeds)
    plan = _plan(model)
    accepted, failed = _verify(model, plan.candidates, feeds, reference, rtol)
    final = _with_sparse(model, {name: plan.candidates[name] for name in accepted})
    outputs = ort_check.run(final.SerializeToString(), feeds)
    _save_atomically(final, out_path)
    return OnnxSparseResult(
        path=out_path,
        sparse=tuple(accepted),
        not_smaller=tuple(plan.not_smaller),
        fallbacks=tuple(plan.fallbacks + failed),
        max_relative_error=_max_error(reference, outputs),
        runtime=ort_check.runtime_name(),
    )


def to_sparse_proto(name: str, array: npt.NDArray[np.generic]) -> Any:
    """COO with linearised indices; nonzero by bit pattern, so -0.0 survives."""
    from onnx import helper, numpy_helper

    flat = np.ascontiguousarray(array).reshape(-1)
    indices = np.flatnonzero(nonzero_mask(flat)).astype(np.int64)
    values = numpy_helper.from_array(flat[indices], name)
    return helper.make_sparse_tensor(values, numpy_helper.from_array(indices), list(array.shape))


def _plan(model: Any) -> _Plan:
    from onnx import TensorProto, numpy_helper

    plan = _Plan()
    outputs = {output.name for output in model.graph.output}
    for init in model.graph.initializer:
        if init.data_location == TensorProto.EXTERNAL:
            plan.fallbacks.append(Fallback(init.name, "stored as external data"))
            continue
        array = numpy_helper.to_array(init)
        if array.dtype.kind in "OSU":
            plan.fallbacks.append(Fallback(init.name, f"{array.dtype} tensors have no sparse form"))
            continue
        if array.ndim == 0 or array.size == 0:
            plan.not_smaller.append(init.name)  # the checker refuses sparse scalars and empties
            continue
        sparse = to_sparse_proto(init.name, array)
        if sparse.ByteSize() >= init.ByteSize():
            plan.not_smaller.append(init.name)
        elif init.name in outputs:
            reason = "a graph output: onnxruntime would return it as a SparseTensor, not an array"
            plan.fallbacks.append(Fallback(init.name, reason))
        else:
            plan.candidates[init.name] = sparse
    return plan


def _verify(
    model: Any,
    candidates: Mapping[str, Any],
    feeds: ort_check.Feeds,
    reference: list[object],
    rtol: float,
) -> tuple[list[str], list[Fallback]]:
    """The candidates that pass together, and a reason for each one that does not."""
    if _failure(_with_sparse(model, candidates), feeds, reference, rtol) is None:
        return list(candidates), []
    # Some tensor breaks the model: try each alone to name the ones at fault.
    accepted, failed = [], []
    for name, sparse in candidates.items():
        reason = _failure(_with_sparse(model, {name: sparse}), feeds, reference, rtol)
        if reason is None:
            accepted.append(name)
        else:
            failed.append(Fallback(name, reason))
    together = _failure(
        _with_sparse(model, {n: candidates[n] for n in accepted}), feeds, reference, rtol
    )
    if together is not None:
        failed += [Fallback(n, f"fails together with the others: {together}") for n in accepted]
        return [], failed
    return accepted, failed


def _failure(
    model: Any, feeds: ort_check.Feeds, reference: list[object], rtol: float
) -> str | None:
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        return f"onnx checker: {_first_line(error)}"
    try:
        outputs = ort_check.run(model.SerializeToString(), feeds)
    except Exception as error:  # ORT raises a family of pybind errors with no common base
        return f"{ort_check.runtime_name()} could not load or run it: {_ort_cause(error)}"
    return ort_check.mismatch(reference, outputs, rtol)


def _with_sparse(model: Any, sparse: Mapping[str, Any]) -> Any:
    import onnx

    result = onnx.ModelProto()
    result.CopyFrom(model)
    kept = [init for init in result.graph.initializer if init.name not in sparse]
    del result.graph.initializer[:]
    result.graph.initializer.extend(kept)
    result.graph.sparse_initializer.extend(sparse.values())
    return result


def _max_error(reference: list[object], outputs: list[object]) -> float:
    errors = [
        ort_check.relative_error(want, got)
        for want, got in zip(reference, outputs, strict=True)
        if isinstance(want, np.ndarray) and isinstance(got, np.ndarray)
    ]
    return max(errors, default=0.0)


def _ort_cause(error: BaseException) -> str:
    # ORT nests statuses: "...graph.cc:1407 Graph::Graph(...) status.IsOK() was false.
    # [ONNXRuntimeError] : 1 : FAIL : <the actual cause>"; the innermost one is the cause.
    cause = str(error).rsplit("[ONNXRuntimeError]", 1)[-1]
    return cause.split(" : ", 2)[-1].strip()[:300] or type(error).__name__


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _save_atomically(model: Any, out_path: Path) -> None:
    import onnx

    partial = out_path.with_name(f".{out_path.name}.partial")
    onnx.save(model, str(partial))
    os.replace(partial, out_path)
