"""The README's GitHub Actions job, run the way a runner runs its prune step: the step's
`run` script in bash, with the step's environment, against a real server, on a real model
and real data (load_digits)."""

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.clients.conftest import API_KEY
from tests.support.processes import REPO_ROOT
from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration

WORKFLOW_HEADER = "# .github/workflows/prune-model.yml"


def readme_workflow() -> dict[str, Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    found = [b for b in blocks if b.startswith(WORKFLOW_HEADER)]
    assert len(found) == 1, f"the README has one workflow starting {WORKFLOW_HEADER!r}"
    workflow: dict[str, Any] = yaml.safe_load(found[0])
    return workflow


def steps() -> list[dict[str, Any]]:
    (job,) = readme_workflow()["jobs"].values()
    listed: list[dict[str, Any]] = job["steps"]
    return listed


def test_readme_workflow_is_a_github_actions_job_whose_steps_run_or_use_an_action() -> None:
    workflow = readme_workflow()
    assert workflow["name"] and workflow[True] == ["push"]  # YAML 1.1 reads `on` as True
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    for step in job["steps"]:
        assert ("run" in step) != ("uses" in step), step
    assert any(s.get("uses", "").startswith("actions/upload-artifact@") for s in job["steps"])


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository checkout as the workflow expects it: a digits model trained on the
    training images, those images, and held-out test images."""
    import torch
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("checkout")
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    train = slice(0, 1400)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[train]), y[train]).backward()
        optimizer.step()
    torch.onnx.export(
        model.eval(),
        (x[:1],),
        str(root / "model.onnx"),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    labels = digits.target.astype(np.int64)
    np.savez(root / "digits-train.npz", x=x[:1400].numpy(), labels=labels[:1400])
    np.savez(root / "digits-test.npz", x=x[1400:].numpy(), labels=labels[1400:])
    return root


def test_readme_prune_step_prunes_gates_on_accuracy_and_leaves_the_artifacts(
    keyed_server: ApiServer, digits_files: Path
) -> None:
    (step,) = [s for s in steps() if "shears submit" in s.get("run", "")]
    values = {"vars.SHEARS_URL": keyed_server.url, "secrets.SHEARS_API_KEY": API_KEY}
    env = {
        "PATH": f"{REPO_ROOT / '.venv' / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": str(REPO_ROOT),
        "GITHUB_SHA": "0123456789abcdef",
        **{
            name: re.sub(r"\$\{\{\s*(\S+)\s*\}\}", lambda m: values[m.group(1)], value)
            for name, value in step["env"].items()
        },
    }

    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]],
        cwd=digits_files,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "accuracy dense" in done.stdout
    pruned = digits_files / "pruned"
    assert {"model.onnx", "report.json", "report_html.html"} <= {p.name for p in pruned.iterdir()}
    metric = json.loads((pruned / "report.json").read_text())["quality"]["metric"]
    assert (metric["samples"], metric["in_sample"]) == (397, False)  # gated on held-out data
