"""The job's manifest, as the engine sees it: what it was given, and the versions it runs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shears_manifest import build_manifest, dataset_roles, manifest_sha256

_CHUNK = 1 << 20


@dataclass(frozen=True)
class KnownDigests:
    """sha256s the caller already has (the worker reads them from the job store), so a job
    does not read a large upload once more just to hash it. Missing ones are computed."""

    model: str | None = None
    datasets: Mapping[str, str] = field(default_factory=dict)  # by dataset id


def job_manifest(
    model_path: Path,
    spec: Mapping[str, Any],
    datasets: Mapping[str, Path],
    known: KnownDigests | None = None,
) -> dict[str, Any]:
    """``{"manifest": …, "manifest_sha256": …}`` for the report. ``spec`` is hashed as
    given: the worker passes the spec the API validated (defaults filled in), so both
    compute the same manifest; a hand-written spec is hashed as written."""
    known = known or KnownDigests()
    by_id = {
        dataset_id: known.datasets.get(dataset_id) or file_sha256(datasets[dataset_id])
        for dataset_id in dataset_roles(spec).values()
        if dataset_id in known.datasets or dataset_id in datasets
    }
    model = known.model or file_sha256(model_path)
    manifest = build_manifest(model, by_id, spec)
    return {"manifest": manifest, "manifest_sha256": manifest_sha256(manifest)}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
