"""Private work dirs for children, and inputs placed in them from the blob store.

Every name in a work dir is chosen here or in worker/protocol.py: ids we generated and
fixed file names, never a user's string.
"""

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage import BlobStore
from worker import protocol


def work_root(data_dir: Path) -> Path:
    root = data_dir / "work"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def private_workdir(data_dir: Path, label: str) -> Iterator[Path]:
    """A fresh dir (mode 0700) with in/, out/ and tmp/; removed on every way out."""
    path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work_root(data_dir))).resolve()
    try:
        for name in (protocol.INPUT_DIR, protocol.OUTPUT_DIR, protocol.TEMP_DIR):
            (path / name).mkdir()
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def place_blob(blobs: BlobStore, sha256: str, destination: Path) -> Path:
    """A blob as a file in a work dir: a hard link to the disk store's own file (made
    read-only), or a copy fetched from the bucket; never a path into a shared store."""
    return blobs.fetch_to(sha256, destination)


def remove_stale_workdirs(data_dir: Path, older_than_s: float) -> int:
    """Work dirs left by a killed worker; only old ones, another worker may share the volume."""
    cutoff = time.time() - older_than_s
    removed = 0
    for leftover in work_root(data_dir).iterdir():
        if leftover.is_dir() and leftover.stat().st_mtime < cutoff:
            shutil.rmtree(leftover, ignore_errors=True)
            removed += 1
    return removed
