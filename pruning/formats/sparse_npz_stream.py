"""The sparse npz (format version 1, see ``sparse_npz``) written one tensor at a time.

``np.savez`` takes every member at once, so the whole pruned model's encodings would be in
memory together; this writer adds each tensor's members to the zip as it comes (the same
stored, zip64 members ``np.savez`` writes) and the catalogue at the end. Files it writes are
read by ``decode_sparse_npz`` like any other.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from pruning.formats import encodings as enc
from pruning.formats.errors import SparseFormatError
from pruning.formats.sparse_npz import FORMAT_VERSION, TensorChoice, choose_encoding


class SparseNpzWriter:
    """``add`` tensors in order, then ``close`` (or leave the ``with`` block) to finish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._partial = path.with_name(f".{path.name}.partial.npz")
        self._zip = zipfile.ZipFile(self._partial, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._names: list[str] = []
        self._dtypes: list[str] = []
        self.choices: list[TensorChoice] = []

    def add(self, name: str, array: npt.NDArray[np.generic]) -> None:
        if name.endswith("\0"):  # numpy's fixed-width strings drop trailing NULs on load
            raise SparseFormatError(f"tensor name {name!r} ends in a NUL character")
        enc.check_numeric(name, array)
        index = len(self._names)
        best, costs = choose_encoding(array)
        self._member(f"t{index}.shape", np.asarray(array.shape, dtype=np.int64))
        for role, part in best.arrays.items():
            self._member(f"t{index}.{role}", part)
        self._names.append(name)
        self._dtypes.append(array.dtype.str)
        self.choices.append(TensorChoice(name, best.encoding, costs))

    def close(self) -> None:
        self._member("format_version", np.asarray(FORMAT_VERSION, dtype=np.uint16))
        self._member("names", np.asarray(self._names, dtype=np.str_))
        self._member("encodings", np.asarray([c.chosen for c in self.choices], dtype=np.str_))
        self._member("dtypes", np.asarray(self._dtypes, dtype=np.str_))
        self._zip.close()
        os.replace(self._partial, self.path)

    def abandon(self) -> None:
        self._zip.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> SparseNpzWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()

    def _member(self, key: str, array: npt.NDArray[np.generic]) -> None:
        with self._zip.open(f"{key}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
