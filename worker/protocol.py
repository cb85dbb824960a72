"""What the worker and its sandboxed child exchange: fixed file names in the work dir, the
request and outcome documents, and the error codes of API.md's `JobError.code`.

Only this module and the child know these names; nothing here is ever a user's string.
"""

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUEST_FILE = "request.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
LOG_FILE = "child.log"
INPUT_DIR = "in"
OUTPUT_DIR = "out"
TEMP_DIR = "tmp"
# `python -m worker.child --warm`: started before its job, which it reads from stdin.
WARM_FLAG = "--warm"

# Error codes the worker itself produces (the engine adds its own, e.g. `invalid_spec`).
INVALID_MODEL = "invalid_model"
INVALID_SPEC = "invalid_spec"
TIMEOUT = "timeout"
RESOURCE_EXHAUSTED = "resource_exhausted"
INTERNAL_ERROR = "internal_error"
# Every code a job may fail with from here: the engine's (pruning/errors.py ERROR_CODES) and
# the worker's. A child is untrusted (TorchScript is code), so a code it writes outside this
# set is recorded as internal_error: codes are metric labels (storage/metrics.py keeps the
# same set plus the store's `worker_lost`; a test pins the three lists together).
ERROR_CODES = frozenset(
    {
        "engine_error",
        INVALID_MODEL,
        "unsupported_model",
        "unsupported_operator",
        INVALID_SPEC,
        "unsupported",
        "layer_pattern_unmatched",
        "data_mismatch",
        TIMEOUT,
        RESOURCE_EXHAUSTED,
        INTERNAL_ERROR,
    }
)

MODEL_SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


@dataclass(frozen=True)
class ChildError:
    code: str
    message: str
    # Killed from outside (SIGKILL: an operator, the kernel's OOM killer): worth another
    # attempt, while the attempt cap stops one that is killed every time.
    rerun: bool = False


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write whole or not at all: the parent never reads half a result."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, default=_jsonable))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return loaded if isinstance(loaded, dict) else None


def read_error(workdir: Path) -> ChildError | None:
    document = read_json(workdir / ERROR_FILE)
    if document is None:
        return None
    code = str(document.get("code") or INTERNAL_ERROR)
    message = str(document.get("message") or code)[:4000]
    if code not in ERROR_CODES:
        return ChildError(code=INTERNAL_ERROR, message=f"unknown error code: {message}"[:4000])
    return ChildError(code=code, message=message)


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays from the engine's progress data and reports."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def describe_validation_error(where: str, errors: Sequence[Mapping[str, Any]]) -> str:
    """`outputs.0.dtype: Input should be a valid string`, for a pydantic error list: short
    enough for a job's or model's error message."""
    parts = [f"{'.'.join(map(str, (where, *e['loc'])))}: {e['msg']}" for e in errors[:5]]
    return "; ".join(parts)
