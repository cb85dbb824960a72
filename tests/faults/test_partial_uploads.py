"""Partial uploads on a volume shared by API replicas: a dead process's are removed at once,
a live replica's stay, whatever their age."""

import subprocess
import sys
from pathlib import Path

from storage import FileBlobStore
from storage.blobs import clear_stale_temp_files

# A process that starts an upload and dies mid-way (no cleanup runs on os._exit).
_DIES_MID_UPLOAD = """
import os, sys
from pathlib import Path
from storage import FileBlobStore
store = FileBlobStore(Path(sys.argv[1]))
upload = store.staging.temp_file()
upload.file.write(b"half of a model")
upload.file.flush()
os._exit(9)
"""


def partial_files(root: Path) -> list[Path]:
    return [p for p in (root / "tmp").rglob("upload-*") if p.is_file()]


def test_a_dead_processs_partial_upload_is_removed_at_the_next_start(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", _DIES_MID_UPLOAD, str(tmp_path)]
    assert subprocess.run(argv, cwd=Path(__file__).resolve().parents[2]).returncode == 9
    assert len(partial_files(tmp_path)) == 1

    assert clear_stale_temp_files(FileBlobStore(tmp_path)) == 1
    assert partial_files(tmp_path) == []


def test_a_live_replicas_partial_upload_is_kept(tmp_path: Path) -> None:
    live = FileBlobStore(tmp_path)
    with live.staging.temp_file() as (path, out):
        out.write(b"arriving")
        out.flush()

        restarted = FileBlobStore(tmp_path)  # another replica starting on the same volume
        assert clear_stale_temp_files(restarted, older_than_s=0.0) == 0
        assert path.exists()
