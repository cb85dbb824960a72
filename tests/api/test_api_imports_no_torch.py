"""The API process never loads the engine, the worker, or their heavy dependencies."""

import subprocess
import sys

from tests.support.processes import REPO_ROOT

FORBIDDEN = ("torch", "onnx", "onnxruntime", "pruning", "worker")


def test_importing_the_api_loads_no_torch_onnx_engine_or_worker() -> None:
    probe = (
        "import sys, service.app, service.cli\n"
        "service.app.create_app()\n"
        f"print(sorted(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
