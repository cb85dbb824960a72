"""Checks on one JSON value of a spec, shared by the parsers of its blocks: each refusal is an
``InvalidSpec`` naming the field (``where``), which the API turns into a 422."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pruning.errors import InvalidSpec


def object_at(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidSpec(f"{where} must be an object", field=where)
    return raw


def choice_at(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise InvalidSpec(
            f"{where} must be one of {', '.join(map(repr, allowed))}, got {value!r}", field=where
        )
    return str(value)
