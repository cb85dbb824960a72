"""A job's manifest: everything that decides its artifact's bytes, and one hash of it.

The API computes it at createJob (to find an earlier identical job) and the engine computes
it again beside the artifact (what actually ran); both must agree to the byte, so it is
defined once, here. Standard library only: the API imports it without torch, the engine
without pydantic.

Content, not names, makes two jobs identical: the model and each dataset enter by sha256,
the spec as the validated JSON (defaults filled in, so spelling does not matter), and the
versions of the code that computes the weights.
"""

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import metadata
from typing import Any

__all__ = [
    "VERSIONED",
    "build_manifest",
    "canonical_json",
    "dataset_roles",
    "installed_versions",
    "manifest_sha256",
    "seeds",
]

# What computes the pruned weights and writes the file: a change in any may change the bytes.
VERSIONED = ("shears", "torch", "onnx", "onnxruntime", "numpy")

_PIN = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^;\s]+)")


def canonical_json(document: Any) -> str:
    """One spelling per document: keys sorted, no spaces, ASCII only."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _sha256_of(document: Any) -> str:
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    return _sha256_of(dict(manifest))


def build_manifest(
    model_sha256: str,
    dataset_sha256: Mapping[str, str],
    spec: Mapping[str, Any],
    versions: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """``spec`` is the validated spec as JSON; ``dataset_sha256`` maps each dataset id the
    spec names to its content's sha256 (ids the spec does not name are left out)."""
    roles = dataset_roles(spec)
    return {
        "model_sha256": model_sha256,
        "datasets": {role: dataset_sha256[dataset_id] for role, dataset_id in roles.items()},
        "spec": dict(spec),
        "spec_sha256": _sha256_of(dict(spec)),
        "seeds": seeds(spec),
        "versions": dict(installed_versions() if versions is None else versions),
    }


def dataset_roles(spec: Mapping[str, Any]) -> dict[str, str]:
    """``{"calibration": "ds_…", "retrain": …, "evaluation": …}``: each block of the spec
    that names a dataset, by the block's name (future blocks included)."""
    return {
        key: value["dataset_id"]
        for key, value in spec.items()
        if isinstance(value, Mapping) and isinstance(value.get("dataset_id"), str)
    }


def seeds(spec: Mapping[str, Any]) -> dict[str, int]:
    """Every seed the spec fixes, by its path (``method.seed``, ``retrain.seed``): a job may
    have several sources of randomness, each with its own seed, so no one number says it."""
    return dict(_seeds(spec, ""))


def _seeds(node: Any, path: str) -> Iterator[tuple[str, int]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "seed" and isinstance(value, int) and not isinstance(value, bool):
                yield where, value
            else:
                yield from _seeds(value, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _seeds(item, f"{path}.{index}")


def installed_versions() -> dict[str, str | None]:
    """The release of each package in ``VERSIONED`` this process would run.

    Where one is not installed (the API's image carries no torch), the release the `shears`
    distribution pins for its engine is what a worker installs, so the API's manifest still
    matches the worker's. Local labels (``2.14.1+cpu``) are dropped: a CPU and a CUDA build
    of one release are the same source, and the worker image installs torch from the CPU
    index while the pin names the plain release. None: neither installed nor pinned.
    """
    return dict(_versions())  # a copy: the cached one stays as read


@cache  # installed packages do not change under a running process; createJob asks each time
def _versions() -> dict[str, str | None]:
    pins = _pinned()
    return {name: _release(_installed(name) or pins.get(name)) for name in VERSIONED}


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _pinned() -> dict[str, str]:
    try:
        requirements = metadata.requires("shears") or []
    except metadata.PackageNotFoundError:
        return {}
    found = (_PIN.match(line) for line in requirements)
    return {m.group(1).lower(): m.group(2) for m in found if m}


def _release(version: str | None) -> str | None:
    return None if version is None else version.split("+", 1)[0]
