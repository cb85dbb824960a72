"""Turn a child's result into stored artifacts and a contract-checked report.

The child is untrusted (a TorchScript upload is code): every path it names must be a plain
file inside its own out/ dir, and its report must fit `api_schemas.Report`.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api_schemas import Report
from storage import BlobStore
from worker import protocol

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SUFFIX_FORMATS = {
    ".onnx": "onnx",
    ".pt": "torchscript",
    ".json": "json",
    ".npz": "npz",
    ".html": "html",
}


class ResultRejected(Exception):
    """The child's result breaks the contract: an internal error, nothing is stored."""


@dataclass(frozen=True)
class CheckedResult:
    files: dict[str, Path]
    report: dict[str, Any]


def check_result(result: dict[str, Any], workdir: Path) -> CheckedResult:
    files = {name: _checked_file(name, rel, workdir) for name, rel in _artifacts(result).items()}
    if "model" not in files:
        raise ResultRejected("the engine returned no `model` artifact")
    try:
        report = Report.model_validate(result.get("report")).model_dump(mode="json")
    except ValidationError as exc:
        detail = protocol.describe_validation_error("report", exc.errors())
        raise ResultRejected(
            f"the engine's report does not fit the Report contract: {detail}"
        ) from exc
    return CheckedResult(files=files, report=report)


def store_artifacts(
    blobs: BlobStore, checked: CheckedResult, model_format: str, workdir: Path
) -> list[dict[str, Any]]:
    """Put each file in the blob store (atomically), plus the report as JSON. The store
    takes the files over (a local store links them in: no copy of a large model); the
    work dir is removed right after, and the child that wrote them is dead."""
    files = dict(checked.files)
    if "report" not in files:
        report_path = workdir / protocol.OUTPUT_DIR / "report.json"
        report_path.write_text(json.dumps(checked.report, indent=2, sort_keys=True))
        files["report"] = report_path
    records = []
    for name, path in files.items():
        stored = blobs.adopt_file(path)
        records.append(
            {
                "name": name,
                "format": _model_format(model_format, path)
                if name in ("model", "onnx_sparse")  # either may come as an archive
                else _format_of(path),
                "size_bytes": stored.size_bytes,
                "sha256": stored.sha256,
            }
        )
    return records


def _artifacts(result: dict[str, Any]) -> dict[str, str]:
    artifacts = result.get("artifacts")
    if not isinstance(artifacts, dict):
        raise ResultRejected("the engine's result has no artifacts")
    return {str(k): str(v) for k, v in artifacts.items()}


def _checked_file(name: str, relative: str, workdir: Path) -> Path:
    if not _NAME.fullmatch(name):
        raise ResultRejected(f"artifact name {name[:80]!r} is not a plain lowercase name")
    out_dir = (workdir / protocol.OUTPUT_DIR).resolve()
    candidate = workdir / relative
    if candidate.is_symlink() or not candidate.resolve().is_relative_to(out_dir):
        raise ResultRejected(f"artifact {name!r} is not a file in the job's output dir")
    if not candidate.is_file():
        raise ResultRejected(f"artifact {name!r} was not written")
    return candidate


def _model_format(model_format: str, path: Path) -> str:
    """An ONNX model uploaded with its data files in an archive comes back in one: `onnx+zip`
    or `onnx+tar`, so a download is named for what it holds."""
    packaging = path.suffix.lower().lstrip(".")
    return f"{model_format}+{packaging}" if packaging in ("zip", "tar") else model_format


def _format_of(path: Path) -> str:
    return _SUFFIX_FORMATS.get(path.suffix.lower(), "binary")
