"""The recipe of docs/architecture.md, followed on a copy of the code: one registry entry and
one engine file make a method the contract validates, the engine runs, the OpenAPI schema
describes and both CLIs offer, with no other line changed."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.engine.factories import FAST_LATENCY, export_onnx, make_mlp

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("api_schemas", "pruning", "shears_client", "shears_flags", "shears_manifest")

ENTRY = """
METHODS["power"] = _data_free(
    "power",
    "|weight| to a power",
    doc="Score |w| ** power: magnitude's order, to show the recipe.",
    options=(Option("power", float, 2.0, "The exponent.", gt=0.0, le=8.0),),
    example=("power",),
)
"""

ENGINE_FILE = """
from typing import ClassVar

import numpy as np

from pruning.methods.base import SCORERS, IntArray, Scorer
from pruning.tensors import FloatArray, WeightTensor


@SCORERS.register
class PowerScorer(Scorer):
    name: ClassVar[str] = "power"
    position_free: ClassVar[bool] = True

    def __init__(self, *, power: float) -> None:
        self.power = power

    def score(self, tensor: WeightTensor, start: int, out: FloatArray) -> FloatArray:
        np.abs(tensor.flat[start : start + out.size], out=out)
        return np.power(out, self.power, out=out)

    def score_at(self, tensor: WeightTensor, positions: IntArray) -> FloatArray:
        scores = np.abs(tensor.flat[positions]).astype(self.score_dtype(tensor))
        return np.power(scores, self.power, out=scores)
"""

CHECK = """
import json, sys
from pathlib import Path

from api_schemas.spec import PruneSpec
from pruning import prune
from pydantic import ValidationError

model, out = Path(sys.argv[1]), Path(sys.argv[2])
spec = {"sparsity": 0.5, "method": {"name": "power", "power": 3.0}, "latency": %s}
result = prune(model, spec, out)
try:
    PruneSpec.model_validate({"sparsity": 0.5, "method": {"name": "power", "power": 9}})
    refused = None
except ValidationError as exc:
    refused = exc.errors()[0]["loc"]
schema = PruneSpec.model_json_schema()["$defs"]["PowerMethod"]
print(json.dumps({
    "achieved": result.report["sparsity"]["achieved"],
    "refused_at": list(refused or []),
    "example": schema["examples"],
    "default": PruneSpec(sparsity=0.5, method={"name": "power"}).method.model_dump(),
}))
"""


_CACHES = shutil.ignore_patterns("__pycache__")


def _copy_with_a_new_method(root: Path) -> Path:
    """The code as it is, plus the entry and the file the recipe asks for."""
    for package in (*PACKAGES, "shears_methods"):
        shutil.copytree(
            REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "shears_cli.py", root / "shears_cli.py")
    registry = root / "shears_methods" / "__init__.py"
    registry.write_text(registry.read_text() + ENTRY)
    (root / "pruning" / "methods" / "power.py").write_text(ENGINE_FILE)
    return root


def _run(root: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},  # the copy, not the checkout
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_an_entry_and_one_engine_file_make_a_method_usable_everywhere(tmp_path: Path) -> None:
    root = _copy_with_a_new_method(tmp_path / "code")
    model = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    check = CHECK % json.dumps(dict(FAST_LATENCY))
    seen = json.loads(_run(root, "-c", check, str(model), str(tmp_path / "out")))
    assert seen["achieved"] == 0.5
    assert seen["refused_at"] == ["method", "power", "power"]
    assert seen["example"] == [{"name": "power", "power": 2.0}]
    assert seen["default"] == {"name": "power", "power": 2.0}
    assert "power" in _run(root, "-m", "shears_cli", "submit", "--help")
    assert "power" in _run(root, "-m", "shears_cli", "prune", "--help")
