"""Does an uploaded dataset fit a job? Its arrays against the model's inputs (name, dtype,
trailing shape), and the `labels` / `targets` a loss or metric needs.

Only the arrays' recorded headers (`DatasetRecord.arrays`) are read: no data, no engine.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from api_schemas import ProblemFieldError
from storage import DatasetRecord, ModelRecord

Arrays = Mapping[str, Mapping[str, Any]]
_SHOWN_NAMES = 8


def arrays_of(dataset: DatasetRecord) -> dict[str, Mapping[str, Any]]:
    return {a["name"]: a for a in dataset.arrays}


def input_errors(
    field: str,
    dataset: DatasetRecord,
    model: ModelRecord,
    input_shapes: Mapping[str, list[int]] | None,
) -> Iterator[ProblemFieldError]:
    """One error per model input that the dataset cannot feed."""
    arrays = arrays_of(dataset)
    given = input_shapes or {}
    for entry in (model.info or {}).get("inputs", []):
        shape = given.get(entry["name"]) or entry.get("shape")
        yield from _array_errors(field, entry["name"], entry.get("dtype"), shape, arrays)


def class_label_errors(
    field: str, dataset: DatasetRecord, needed_by: str
) -> Iterator[ProblemFieldError]:
    """A dataset without integer class ids in `labels`."""
    labels = arrays_of(dataset).get("labels")
    if labels is None:
        message = f"{needed_by} needs a `labels` array of class ids; the dataset has none"
    elif not _is_integer(labels["dtype"]):
        message = (
            f"{needed_by} needs integer class ids in `labels`; they are {labels['dtype']} "
            "(float targets go in `targets`, with `mse`)"
        )
    else:
        return
    yield ProblemFieldError(field=field, message=message)


def target_errors(
    field: str, dataset: DatasetRecord, model: ModelRecord, needed_by: str
) -> Iterator[ProblemFieldError]:
    """A dataset without `targets` (or float `labels`) shaped like the model's first output."""
    arrays = arrays_of(dataset)
    target = arrays.get("targets")
    if target is None and "labels" in arrays and not _is_integer(arrays["labels"]["dtype"]):
        target = arrays["labels"]
    if target is None:
        message = f"{needed_by} needs a `targets` array (or float `labels`); the dataset has none"
        yield ProblemFieldError(field=field, message=message)
        return
    outputs = (model.info or {}).get("outputs", [])
    declared = outputs[0].get("shape") if outputs else None
    if declared and not _trailing_fits(list(target["shape"][1:]), list(declared[1:])):
        message = (
            f"{needed_by}: `{target['name']}` has shape {target['shape']}; the model's first "
            f"output is {declared}"
        )
        yield ProblemFieldError(field=field, message=message)


def _array_errors(
    field: str,
    name: str,
    dtype: str | None,
    shape: list[Any] | None,
    arrays: Arrays,
) -> Iterator[ProblemFieldError]:
    array = arrays.get(name)
    if array is None:
        yield ProblemFieldError(
            field=field,
            message=f"the dataset has no array {name!r} (an input of the model); "
            f"arrays: {listed(sorted(arrays))}",
        )
        return
    if dtype is not None and array["dtype"] != dtype:
        yield ProblemFieldError(
            field=field, message=f"array {name!r} is {array['dtype']}; the model expects {dtype}"
        )
    expected = list(shape[1:]) if shape else None
    if expected is not None and not _trailing_fits(list(array["shape"][1:]), expected):
        shown = ", ".join(str(d) for d in expected)
        yield ProblemFieldError(
            field=field,
            message=f"array {name!r} has shape {array['shape']}; expected [samples, {shown}]",
        )


def _trailing_fits(actual: list[int], declared: list[Any]) -> bool:
    """Symbolic (string) dims fit any size."""
    return len(actual) == len(declared) and all(
        not isinstance(d, int) or d == a for d, a in zip(declared, actual, strict=True)
    )


def _is_integer(dtype: str) -> bool:
    return dtype.startswith(("int", "uint"))


def listed(names: list[str]) -> str:
    """The first few names, and how many more."""
    if not names:
        return "none"
    shown = ", ".join(names[:_SHOWN_NAMES])
    more = len(names) - _SHOWN_NAMES
    return shown + (f" (and {more} more)" if more > 0 else "")
