"""Does ONNX Runtime load a model, and does it compute what a reference model computes?"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pruning.formats.errors import SparseFormatError

Feeds = Mapping[str, npt.NDArray[np.generic]]

# Symbolic dimensions (a batch axis, a sequence length) get this size in generated inputs.
SYMBOLIC_DIM_SIZE = 1


def runtime_name() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def example_feeds(model_bytes: bytes, seed: int = 0) -> dict[str, npt.NDArray[np.generic]]:
    """Random inputs matching the model's declared inputs (floats normal, others zero)."""
    session = _session(model_bytes)
    rng = np.random.default_rng(seed)
    feeds: dict[str, npt.NDArray[np.generic]] = {}
    for spec in session.get_inputs():
        if spec.shape is None:
            raise SparseFormatError(f"input {spec.name!r} declares no shape: pass feeds")
        shape = [d if isinstance(d, int) and d >= 0 else SYMBOLIC_DIM_SIZE for d in spec.shape]
        dtype = _numpy_dtype(spec.type)
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[spec.name] = np.zeros(shape, dtype=dtype)
    return feeds


def run(model_bytes: bytes, feeds: Feeds) -> list[object]:
    return list(_session(model_bytes).run(None, dict(feeds)))


def run_reference(model_bytes: bytes, feeds: Feeds) -> list[object]:
    """Like `run`, for the model the user gave: its failure is the user's to fix."""
    try:
        return run(model_bytes, feeds)
    except Exception as error:  # ORT's pybind errors share no base class
        raise SparseFormatError(f"{runtime_name()} cannot run the dense model: {error}") from error


def mismatch(reference: Sequence[object], candidate: Sequence[object], rtol: float) -> str | None:
    """Why `candidate` differs from `reference`, or None when every output agrees.

    Relative to each output's largest magnitude, not elementwise: elementwise relative error
    is unbounded where the reference is near zero, and tells nothing about the model.
    """
    for index, (want, got) in enumerate(zip(reference, candidate, strict=True)):
        if not isinstance(got, np.ndarray) or not isinstance(want, np.ndarray):
            return f"output {index} is a {type(got).__name__}, not a dense array"
        if got.shape != want.shape or got.dtype != want.dtype:
            got_type, want_type = f"{got.dtype}{list(got.shape)}", f"{want.dtype}{list(want.shape)}"
            return f"output {index} is {got_type}, not {want_type}"
        error = relative_error(want, got)
        if not error <= rtol:
            return f"output {index} differs: relative error {error:.3g} > {rtol:g}"
    return None


def relative_error(want: npt.NDArray[np.generic], got: npt.NDArray[np.generic]) -> float:
    if want.size == 0:
        return 0.0
    if want.dtype.kind not in "fc":
        return 0.0 if np.array_equal(want, got) else float("inf")
    scale = float(np.max(np.abs(want)))
    diff = float(np.max(np.abs(want.astype(np.float64) - got.astype(np.float64))))
    return diff / scale if scale > 0 else diff


def _session(model_bytes: bytes) -> Any:  # onnxruntime ships no type information
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about initializers listed as inputs are noise here
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _numpy_dtype(ort_type: str) -> np.dtype[np.generic]:
    # ORT spells input types "tensor(float)", "tensor(int64)", ...
    names = {"float": "float32", "double": "float64", "float16": "float16", "bool": "bool"}
    element = ort_type.removeprefix("tensor(").removesuffix(")")
    return np.dtype(names.get(element, element))
