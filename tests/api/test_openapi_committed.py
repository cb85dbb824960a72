"""Generated clients are built from the committed openapi.json: it must be what the app
serves (its operation ids and problems are pinned in test_api_problems.py)."""

from pathlib import Path

from service.openapi import document_text

REPO = Path(__file__).resolve().parents[2]


def test_committed_openapi_matches_the_app() -> None:
    committed = (REPO / "openapi.json").read_text()
    assert committed == document_text(), "openapi.json is stale: run `make openapi`"
