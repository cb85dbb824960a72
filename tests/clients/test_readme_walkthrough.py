"""The README's curl walk-through and its retraining section, run as a new user pastes them:
the bash blocks in order, in one shell, against a real `shears serve`, twice in a row in the
same folder (people do run it again, and it once hung forever the second time)."""

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import REPO_ROOT, scoped_registry
from tests.support.shears import ApiServer, shears_env, start_serve

pytestmark = pytest.mark.integration

README_URL = "http://127.0.0.1:8000"
FIRST, AFTER_LAST = "## Walk-through with curl", "## Webhooks"


def walkthrough_blocks(server_url: str) -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    start, end = readme.index(FIRST), readme.index(AFTER_LAST)
    blocks = re.findall(r"```bash\n(.*?)```", readme[start:end], re.S)
    assert len(blocks) >= 6, "the walk-through lost its steps"
    return [block.replace(README_URL, server_url) for block in blocks]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("walkthrough-server")
    with scoped_registry(root / "logs") as registry:
        yield start_serve(registry, shears_env(root / "data"))


def run(script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    # -e: a step that fails ends the run, as a reader would stop; the timeout is the hang.
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_readme_walkthrough_runs_to_the_end_twice_in_a_row(
    server: ApiServer, tmp_path: Path
) -> None:
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    script = "\n".join(walkthrough_blocks(server.url))

    runs = [run(script, tmp_path), run(script, tmp_path)]

    for done in runs:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "refused" not in done.stderr
        assert re.search(r"accuracy dense 0\.\d+ pruned 0\.\d+ at sparsity 0\.9", done.stdout)
    assert (tmp_path / "mlp-pruned.onnx").stat().st_size > 0
    # Each run had its own jobs (a fresh Idempotency-Key, not the first run's job again).
    jobs = httpx.get(f"{server.url}/v1/jobs", params={"limit": 50}).json()["items"]
    assert [job["status"] for job in jobs] == ["succeeded"] * 4


def test_wait_for_job_gives_up_on_a_job_that_does_not_exist(
    server: ApiServer, tmp_path: Path
) -> None:
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    (helpers,) = [b for b in walkthrough_blocks(server.url) if "wait_for_job() {" in b]
    for job in ("", "job_doesnotexist"):
        done = run(f'{helpers}\nwait_for_job "{job}"', tmp_path)
        assert done.returncode == 1
        assert f"job '{job}': error" in done.stderr
