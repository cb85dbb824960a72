"""Synthetic inputs built from a model's signature and from how its graph uses each input:
seeded standard normal for floats; for integers and booleans, indices drawn across the table
they index, ones for a mask, zeros otherwise (``pruning.input_ranges``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pruning.errors import DataMismatch, InvalidSpec, UnsupportedModel
from pruning.input_ranges import FREE, InputRange
from pruning.models.base import Array
from pruning.tensors import TensorSpec


@dataclass(frozen=True)
class ResolvedInput:
    name: str
    dtype: np.dtype[Any]
    dims: tuple[int, ...]
    batch: str  # "variable": dim 0 takes any batch size; "fixed"; "none": a scalar input
    values: InputRange = FREE  # for integer and bool inputs: what the graph lets them be

    @property
    def is_float(self) -> bool:
        return bool(np.issubdtype(self.dtype, np.floating))

    def fill(self) -> str:
        if self.is_float:
            return "seeded standard normal"
        if self.values.kind == "indices":
            return f"seeded uniform integers in [0, {self.values.high}): {self.values.why}"
        if self.values.kind == "mask":
            return f"ones: {self.values.why}"
        if self.values.kind == "unsized":
            return f"zeros: {self.values.why}"
        return "zeros: no use in the graph bounds its values"


@dataclass(frozen=True)
class InputPlan:
    inputs: list[ResolvedInput]
    source: str

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def fixed_batch(self) -> int | None:
        """The batch size the model insists on, if any input fixes it."""
        return next((i.dims[0] for i in self.inputs if i.batch == "fixed"), None)

    def feeds(self, batch_size: int, seed: int) -> dict[str, Array] | str:
        """Inputs for ``batch_size`` samples, or the reason that batch size cannot be fed."""
        for i in self.inputs:
            if i.batch == "fixed" and i.dims[0] != batch_size:
                return f"input {i.name!r} has a fixed batch dimension of {i.dims[0]}"
        rng = np.random.default_rng(seed)
        return {i.name: _fill(rng, i, batch_size) for i in self.inputs}

    def unrepresentative(self) -> str | None:
        """Why synthetic inputs cannot stand for real ones, or None when they can."""
        unsized = next((i for i in self.inputs if i.values.kind == "unsized"), None)
        if unsized is None:
            return None
        return (
            f"input {unsized.name!r} holds {unsized.values.why}, so no synthetic value is "
            "known to be valid; give evaluation or calibration data to measure fidelity"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "fill": {i.name: i.fill() for i in self.inputs},
            "shapes": {
                i.name: (["batch", *i.dims[1:]] if i.batch == "variable" else list(i.dims))
                for i in self.inputs
            },
            "dtypes": {i.name: i.dtype.name for i in self.inputs},
        }


def resolve_inputs(
    specs: Sequence[TensorSpec],
    given: Mapping[str, tuple[int, ...]] | None,
    exact_shapes: bool,
    ranges: Mapping[str, InputRange] | None = None,
    data: tuple[str, Mapping[str, tuple[int, ...]]] | None = None,
) -> InputPlan:
    """``exact_shapes``: the recorded shapes are constraints (ONNX), not examples (a traced
    TorchScript module), so an int batch dimension is fixed rather than assumed variable.
    ``ranges``: the adapter's ``input_ranges()``, for integer and bool inputs. ``data``: the
    job's dataset (its name, its arrays' shapes, samples first), whose per-sample shape sizes
    an input's symbolic axes when ``given`` does not."""
    given = dict(given or {})
    unknown = sorted(set(given) - {s.name for s in specs})
    if unknown:
        raise InvalidSpec(
            f"input_shapes names {unknown[0]!r}, which is not a model input; "
            f"inputs are: {[s.name for s in specs]}",
            field="input_shapes",
        )
    ranges = ranges or {}
    from_data = {} if data is None else _shapes_from_data(specs, given, data[1])
    inputs = [
        replace(
            _resolve(s, given.get(s.name) or from_data.get(s.name), exact_shapes),
            values=ranges.get(s.name, FREE),
        )
        for s in specs
    ]
    if from_data:
        assert data is not None
        named = ", ".join(sorted(from_data))
        source = f"the per-sample shape of {data[0]} for {named} (symbolic axes in the model)"
        return InputPlan(inputs, ("input_shapes; " if given else "") + source)
    return InputPlan(inputs, "input_shapes" if given else "model signature")


def _shapes_from_data(
    specs: Sequence[TensorSpec],
    given: Mapping[str, tuple[int, ...]],
    arrays: Mapping[str, tuple[int, ...]],
) -> dict[str, tuple[int, ...]]:
    """Shapes for the inputs with a symbolic axis after the batch one and no given shape,
    taken from the data's array of the same name and rank: one sample, the batch axis first
    as the signature has it. Fixed axes must agree (else loading the data names the
    mismatch, and the input keeps its error here)."""
    found: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        shape, array = spec.shape, arrays.get(spec.name)
        if spec.name in given or shape is None or array is None or len(array) != len(shape):
            continue
        if all(isinstance(d, int) for d in shape[1:]):
            continue
        if any(isinstance(d, int) and d != a for d, a in zip(shape[1:], array[1:], strict=True)):
            continue
        batch = shape[0] if shape and isinstance(shape[0], int) else 1
        found[spec.name] = (batch, *array[1:])
    return found


def _resolve(spec: TensorSpec, given: tuple[int, ...] | None, exact: bool) -> ResolvedInput:
    dtype = _numpy_dtype(spec)
    if given is not None:
        _check_given(spec, given, exact)
        fixed = (
            exact and spec.shape is not None and bool(spec.shape) and isinstance(spec.shape[0], int)
        )
        return ResolvedInput(spec.name, dtype, given, _batch_kind(given, fixed))
    if spec.shape is None:
        raise InvalidSpec(
            f"input {spec.name!r} has no recorded shape (scripted TorchScript keeps none); "
            f'pass input_shapes with the batch size first, e.g. {{"{spec.name}": [1, 3, 32, 32]}}, '
            f"or embed shears/inputs.json in the archive",
            field="input_shapes",
        )
    for position, dim in enumerate(spec.shape[1:], start=1):
        if not isinstance(dim, int):
            raise InvalidSpec(
                f"input {spec.name!r} has a symbolic dimension {dim!r} at position {position}; "
                "pass input_shapes with concrete sizes for it, or give calibration or "
                f"evaluation data with an array {spec.name!r} whose samples have that shape",
                field="input_shapes",
            )
    dims = tuple(d if isinstance(d, int) else 1 for d in spec.shape)
    fixed = exact and bool(spec.shape) and isinstance(spec.shape[0], int)
    return ResolvedInput(spec.name, dtype, dims, _batch_kind(dims, fixed))


def _batch_kind(dims: tuple[int, ...], fixed: bool) -> str:
    if not dims:
        return "none"
    return "fixed" if fixed else "variable"


def _check_given(spec: TensorSpec, given: tuple[int, ...], exact: bool) -> None:
    if not exact or spec.shape is None:
        return
    mismatch = len(given) != len(spec.shape) or any(
        isinstance(d, int) and d != g for d, g in zip(spec.shape, given, strict=False)
    )
    if mismatch:
        raise DataMismatch(
            f"input_shapes gives {spec.name!r} shape {list(given)}, but the model declares "
            f"{spec.shape}; give a shape that matches its fixed dimensions"
        )


def _numpy_dtype(spec: TensorSpec) -> np.dtype[Any]:
    try:
        return np.dtype(spec.dtype or "float32")
    except TypeError as exc:
        raise UnsupportedModel(
            f"input {spec.name!r} has dtype {spec.dtype!r}, which Shears cannot synthesise"
        ) from exc


def _fill(rng: np.random.Generator, spec: ResolvedInput, batch_size: int) -> Array:
    shape = spec.dims if spec.batch != "variable" else (batch_size, *spec.dims[1:])
    if spec.is_float:
        return rng.standard_normal(shape).astype(spec.dtype)
    if spec.values.kind == "indices" and spec.values.high and np.issubdtype(spec.dtype, np.integer):
        high = min(spec.values.high, int(np.iinfo(spec.dtype).max) + 1)
        return rng.integers(0, high, shape).astype(spec.dtype)
    if spec.values.kind == "mask":
        return np.ones(shape, spec.dtype)
    return np.zeros(shape, spec.dtype)
