"""What createJob can check before queueing: the spec against the model's signature.

Anything cheap to know now fails now, as a 4xx naming the field, instead of minutes later
as a failed job. The model's signature comes from the worker's inspection (`ModelRecord.info`).
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from api_schemas import ProblemFieldError, PruneSpec
from service.dataset_fit import class_label_errors, input_errors, listed, target_errors
from service.problems import ProblemError
from shears_methods import METHODS
from storage import DatasetRecord, ModelRecord, NotFound


def check_model_usable(model: ModelRecord) -> None:
    if model.status == "validating":
        raise ProblemError(
            409,
            "model_validating",
            f"model {model.id!r} is still being validated; retry when its status is `ready`",
        )
    if model.status == "failed":
        raise ProblemError(
            409,
            "model_failed",
            f"opening model {model.id!r} failed in Shears, not in the file; retry it with "
            f"POST /v1/models/{model.id}/inspect",
        )
    if model.status == "invalid":
        raise ProblemError(
            422,
            "model_invalid",
            f"model {model.id!r} is invalid: {model.error}",
            errors=[ProblemFieldError(field="model_id", message="the model is invalid")],
        )


def check_spec(
    spec: PruneSpec, model: ModelRecord, dataset_exists: Callable[[str], object]
) -> None:
    """Raise one 422 listing every problem found. ``dataset_exists`` answers a falsy value for
    an unknown id, and the ``DatasetRecord`` where it has one (its arrays are checked)."""
    info = model.info or {}
    errors = [
        *_layer_errors(spec, _weights(info)),
        *_input_errors(spec, model.format, info.get("inputs", [])),
        *_dataset_errors(spec, dataset_exists),
        *_calibration_errors(spec, model, dataset_exists),
        *_retrain_errors(spec, model, dataset_exists),
        *_evaluation_errors(spec, model, dataset_exists),
        *_output_errors(spec, model.format),
        *_unit_errors(spec, model.format or ""),
    ]
    if errors:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        raise ProblemError(422, "invalid_spec", detail, errors=errors)


@dataclass(frozen=True)
class _Weight:
    """A weight as globs see it: by its name or its node's (as ``pruning.layers`` does)."""

    name: str
    node: str
    unused: str | None = None  # why nothing reads it; such a weight is skipped, not pruned

    def matches(self, pattern: str) -> bool:
        return fnmatchcase(self.name, pattern) or bool(
            self.node and fnmatchcase(self.node, pattern)
        )


def _weights(info: dict[str, Any]) -> list[_Weight]:
    prunable = [_Weight(t["name"], t.get("node") or "") for t in info.get("prunable", [])]
    unused = [
        _Weight(t["tensor"], t.get("node") or "", t.get("reason") or "unused")
        for t in info.get("unused", [])
    ]
    return prunable + unused


def _layer_errors(spec: PruneSpec, weights: list[_Weight]) -> Iterator[ProblemFieldError]:
    layers = spec.layers
    patterns = [
        *((f"spec.layers.include[{i}]", p) for i, p in enumerate(layers.include)),
        *((f"spec.layers.exclude[{i}]", p) for i, p in enumerate(layers.exclude)),
        *((f"spec.layers.overrides.{p}", p) for p in layers.overrides),
    ]
    names = [w.name if w.node in ("", w.name) else f"{w.name} ({w.node})" for w in weights]
    unmatched = False
    for field, pattern in patterns:
        if not any(w.matches(pattern) for w in weights):
            unmatched = True
            yield ProblemFieldError(
                field=field,
                message=f"{pattern!r} matches no prunable tensor; available: {listed(names)}",
            )
    if unmatched:
        return
    selected = [
        w
        for w in weights
        if any(w.matches(p) for p in layers.include)
        and not any(w.matches(p) for p in layers.exclude)
    ]
    if not selected:
        yield ProblemFieldError(
            field="spec.layers", message="include minus exclude leaves no tensor to prune"
        )
    elif all(w.unused for w in selected):
        reasons = "; ".join(f"{w.name}: {w.unused}" for w in selected[:3])
        yield ProblemFieldError(
            field="spec.layers", message=f"no selected tensor can be pruned: {reasons}"
        )


def _output_errors(spec: PruneSpec, fmt: str | None) -> Iterator[ProblemFieldError]:
    if "onnx_sparse" in spec.outputs and fmt != "onnx":
        yield ProblemFieldError(
            field="spec.outputs",
            message=f"'onnx_sparse' needs an ONNX model; this one is {fmt}: ask for 'sparse_npz'",
        )


def _input_errors(
    spec: PruneSpec, fmt: str | None, inputs: list[dict[str, Any]]
) -> Iterator[ProblemFieldError]:
    known = {t["name"]: t.get("shape") for t in inputs}
    given = spec.input_shapes or {}
    for name, shape in given.items():
        field = f"spec.input_shapes.{name}"
        if name not in known:
            yield ProblemFieldError(
                field=field, message=f"not an input of the model; inputs: {listed(list(known))}"
            )
        elif fmt == "onnx" and not _shape_fits(shape, known[name]):
            yield ProblemFieldError(
                field=field, message=f"{shape} does not fit the model's input shape {known[name]}"
            )
    unknown = [n for n, s in known.items() if s is None and n not in given]
    if fmt == "torchscript" and unknown:
        yield ProblemFieldError(
            field="spec.input_shapes",
            message="a TorchScript model does not carry its input shapes; give them for "
            f"{listed(unknown)}, e.g. {{{unknown[0]!r}: [1, 3, 32, 32]}}",
        )


def _shape_fits(shape: list[int], declared: list[int | str] | None) -> bool:
    """ONNX fixes its integer dims; TorchScript's recorded shapes are only trace examples."""
    if declared is None:
        return True
    if len(shape) != len(declared):
        return False
    return all(not isinstance(d, int) or d == s for s, d in zip(shape, declared, strict=True))


def _dataset_errors(
    spec: PruneSpec, dataset_exists: Callable[[str], object]
) -> Iterator[ProblemFieldError]:
    """Every `dataset_id` anywhere in the spec (calibration, retrain, evaluation...)."""
    for field, dataset_id in dataset_refs(spec.model_dump(mode="json")):
        if not dataset_exists(dataset_id):
            yield ProblemFieldError(field=field, message=f"no dataset {dataset_id!r}")


def _calibration_errors(
    spec: PruneSpec, model: ModelRecord, lookup: Callable[[str], object]
) -> Iterator[ProblemFieldError]:
    """Calibrated methods need calibration data whose arrays feed the model's inputs, and
    take only the granularities their registry entry (`shears_methods`) lists."""
    info = METHODS[spec.method.name]
    if "calibration" in info.needs and spec.calibration is None:
        yield ProblemFieldError(
            field="spec.calibration",
            message=f"method {info.name!r} needs calibration data: "
            '{"dataset_id": "ds_...", "samples": 128}',
        )
    # Learned methods' granularity is refused by the contract itself (api_schemas.spec).
    if info.family == "calibrated" and spec.granularity.kind not in info.granularities:
        allowed = " or ".join(repr(g) for g in info.granularities)
        yield ProblemFieldError(
            field="spec.granularity",
            message=f"method {info.name!r} prunes {allowed}, not {spec.granularity.kind!r}",
        )
    if spec.calibration is None:
        return
    dataset = lookup(spec.calibration.dataset_id)
    if isinstance(dataset, DatasetRecord):  # an unknown id is reported by _dataset_errors
        field = "spec.calibration.dataset_id"
        yield from input_errors(field, dataset, model, spec.input_shapes)


def _retrain_errors(
    spec: PruneSpec, model: ModelRecord, lookup: Callable[[str], object]
) -> Iterator[ProblemFieldError]:
    """Training data feeds the model's inputs and carries what the loss compares against;
    `distill` compares against the dense model's own outputs, so it needs no labels (the
    default, `cross_entropy+distill`, does)."""
    retrain = spec.retrain
    dataset = lookup(retrain.dataset_id) if retrain else None
    if retrain is None or not isinstance(dataset, DatasetRecord):
        return
    field = "spec.retrain.dataset_id"
    yield from input_errors(field, dataset, model, spec.input_shapes)
    if retrain.loss in ("cross_entropy", "cross_entropy+distill"):  # both compare with labels
        yield from class_label_errors(field, dataset, f"loss {retrain.loss!r}")
    elif retrain.loss == "mse":
        yield from target_errors(field, dataset, model, "loss 'mse'")


def _evaluation_errors(
    spec: PruneSpec, model: ModelRecord, lookup: Callable[[str], object]
) -> Iterator[ProblemFieldError]:
    evaluation = spec.evaluation
    dataset = lookup(evaluation.dataset_id) if evaluation else None
    if evaluation is None or not isinstance(dataset, DatasetRecord):
        return
    field = "spec.evaluation.dataset_id"
    yield from input_errors(field, dataset, model, spec.input_shapes)
    if evaluation.metric == "accuracy":
        yield from class_label_errors(field, dataset, "metric 'accuracy'")
    else:
        yield from target_errors(field, dataset, model, "metric 'mse'")


def dataset_refs(node: Any, path: str = "spec") -> Iterator[tuple[str, str]]:
    """(field, dataset id) for every `dataset_id` anywhere in a spec's JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "dataset_id" and isinstance(value, str):
                yield f"{path}.{key}", value
            else:
                yield from dataset_refs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from dataset_refs(value, f"{path}[{i}]")


def dataset_lookup(get_dataset: Callable[[str], object]) -> Callable[[str], object]:
    """The dataset's record, or None when the tenant has no such dataset."""

    def exists(dataset_id: str) -> object:
        try:
            return get_dataset(dataset_id)
        except NotFound:
            return None

    return exists


def _unit_errors(spec: PruneSpec, fmt: str) -> Iterator[ProblemFieldError]:
    """Heads and neurons ranked or refitted on data need calibration data, and an ONNX model."""
    granularity = spec.granularity
    if granularity.kind != "channel":
        return
    asked = [
        name
        for name, on in (
            ("importance", granularity.importance == "output_error"),
            ("rescale", granularity.rescale),
            ("target", granularity.target is not None),
        )
        if on
    ]
    data = [a for a in asked if a != "target"]
    if data and spec.calibration is None:
        yield ProblemFieldError(
            field="spec.calibration",
            message=f"granularity.{data[0]} works on calibration data: "
            '{"dataset_id": "ds_...", "samples": 128}',
        )
    if asked and fmt != "onnx":
        yield ProblemFieldError(
            field=f"spec.granularity.{asked[0]}",
            message="heads and neurons are ranked, refitted and searched on ONNX models",
        )
    if asked and spec.schedule.kind != "one_shot":
        yield ProblemFieldError(
            field=f"spec.granularity.{asked[0]}",
            message="works with a one_shot schedule (with or without retrain)",
        )
