"""The engine's one way into the spec: the HTTP contract (``api_schemas.spec``) validates the
JSON and holds every field and default; this module turns its refusals into the engine's
``InvalidSpec``/``Unsupported`` naming the field, and reads a block's defaults from it, so the
engine's views (``pruning.spec`` and the modules it reads) restate none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from api_schemas import spec as contract
from pruning.errors import InvalidSpec, Unsupported

# What the contract refuses because the engine does not do it (as opposed to a malformed
# value): the engine's errors called these `unsupported` before the contract checked them.
_UNSUPPORTED = {
    ("outputs", "literal_error"),
    ("retrain.regrow", "value_error"),
    ("granularity", "value_error"),
    ("schedule.kind", "value_error"),
}


def validated(raw: Mapping[str, Any] | contract.PruneSpec) -> contract.PruneSpec:
    """The contract object for a spec dict (strictly: ``"0.5"`` is not a sparsity), or the one
    the service already validated; a refusal names the first offending field."""
    if isinstance(raw, contract.PruneSpec):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidSpec("the spec must be a JSON object")
    try:
        return contract.PruneSpec.model_validate(_absent_when_null(raw), strict=True)
    except ValidationError as exc:
        raise _engine_error(exc, raw) from None


def _absent_when_null(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A top-level null the contract does not take (``"allocation": null``) reads as absent,
    as the engine always read it from Python callers; ``"latency": null`` still skips timing."""
    fields = contract.PruneSpec.model_fields
    return {
        key: value
        for key, value in raw.items()
        if value is not None or (key in fields and _nullable(fields[key].annotation))
    }


def _nullable(annotation: Any) -> bool:
    return type(None) in get_args(annotation)


def _engine_error(exc: ValidationError, raw: Mapping[str, Any]) -> InvalidSpec:
    first = exc.errors()[0]
    where = field_name(first["loc"], raw)
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):  # the tag itself
        tag = str(first.get("ctx", {}).get("discriminator", "")).strip("'")
        where = f"{where}.{tag}" if where else tag
    kind = Unsupported if (where, first["type"]) in _UNSUPPORTED else InvalidSpec
    if first["type"] == "extra_forbidden":
        return kind(f"unknown field {where!r} in the spec", field=where)
    return kind(f"{where}: {first['msg']}", field=where or None)


def field_name(loc: Sequence[int | str], raw: Any) -> str:
    """``schedule.steps`` for pydantic's ``("schedule", "gradual", "steps")``: the tag a
    discriminated union adds to the location is not a field, and neither is a list index
    (``outputs``, not ``outputs[1]``)."""
    names: list[str] = []
    value = raw
    for part in loc:
        tag = isinstance(value, Mapping) and part not in value and part in value.values()
        if not tag and isinstance(part, str):
            names.append(part)
        value = _child(value, part)
    return ".".join(names)


def _child(value: Any, part: int | str) -> Any:
    if isinstance(value, Mapping):
        return value.get(part)
    if isinstance(value, list) and isinstance(part, int) and part < len(value):
        return value[part]
    return None


def default_of(model: type[BaseModel], name: str) -> Any:
    """The contract's default of one field, for the engine's views built without a spec
    (a test's ``LatencySpec(budget_s=1)``); lists become tuples, as the views hold them."""
    value = model.model_fields[name].get_default(call_default_factory=True)
    return tuple(value) if isinstance(value, list) else value


def choices(literal: Any) -> tuple[str, ...]:
    """The values of one of the contract's ``Literal`` types, e.g. the retraining losses."""
    return tuple(get_args(literal))
