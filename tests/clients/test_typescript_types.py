"""TypeScript types generated from the committed openapi.json by openapi-typescript type-check
clients/typescript/example.ts with tsc, and catch a misspelt field at compile time.

Needs node and npm, and clients/typescript/node_modules (`make node-deps`): without them these
tests fail, never skip.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clients.conftest import COMMITTED_SPEC
from tests.support.processes import REPO_ROOT

TS_DIR = REPO_ROOT / "clients" / "typescript"
SOURCES = ("example.ts", "wrong_field.ts", "tsconfig.json", "tsconfig.wrong.json")
# openapi-typescript 7 makes every property with a default required, request bodies included
# (its `defaultNonNullable`); a PruneSpec literal would have to spell out every default.
GENERATE_FLAGS = ("--default-non-nullable", "false")


def npx(*args: str) -> subprocess.CompletedProcess[str]:
    """A binary of clients/typescript/node_modules; `--no-install`: never fetch one."""
    assert shutil.which("npx"), "node and npm are needed: `make node-deps` installs them"
    assert (TS_DIR / "node_modules" / ".bin" / args[0]).exists(), "run `make node-deps` first"
    return subprocess.run(
        ["npx", "--no-install", *args],
        cwd=TS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example sources beside `shears.d.ts` generated from the committed spec."""
    root = tmp_path_factory.mktemp("typescript")
    for name in SOURCES:
        shutil.copy(TS_DIR / name, root / name)
    done = npx(
        "openapi-typescript", str(COMMITTED_SPEC), *GENERATE_FLAGS, "-o", str(root / "shears.d.ts")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_generated_types_name_every_schema_of_the_committed_spec(project: Path) -> None:
    declarations = (project / "shears.d.ts").read_text()
    schemas = json.loads(COMMITTED_SPEC.read_text())["components"]["schemas"]
    missing = [n for n in schemas if not re.search(rf"^\s+{re.escape(n)}: ", declarations, re.M)]
    assert missing == []


def test_example_type_checks_against_the_generated_types(project: Path) -> None:
    done = npx("tsc", "-p", str(project / "tsconfig.json"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_misspelt_prune_spec_field_fails_to_compile(project: Path) -> None:
    done = npx("tsc", "-p", str(project / "tsconfig.wrong.json"))
    assert done.returncode != 0
    assert "wrong_field.ts" in done.stdout
    assert "'sparsty' does not exist" in done.stdout
    assert "Did you mean to write 'sparsity'?" in done.stdout


def test_npm_generate_script_uses_the_flags_tested_here() -> None:
    scripts = json.loads((TS_DIR / "package.json").read_text())["scripts"]
    assert " ".join(GENERATE_FLAGS) in scripts["generate"]
