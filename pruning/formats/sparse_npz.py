"""Pruned tensors in one `.npz`, each tensor in whichever encoding is smallest.

Layout, format version 1. Every member is a plain `.npy` array; nothing needs pickle, and
`decode_sparse_npz` loads with `allow_pickle=False`. The archive is stored uncompressed
(`np.savez`), so its size is the size of the encoding itself; its compressed size is
measured or estimated separately by `storage_report`.

    format_version   uint16, 0-d        1
    names            <U (unicode), [T]  tensor names, in the order they were given
    encodings        <U, [T]            "dense" | "csr" | "bitmask", per tensor
    dtypes           <U, [T]            numpy dtype string per tensor (e.g. "<f4"); the
                                        dtype of `t{i}.dense` / `t{i}.data` must equal it
    t{i}.shape       int64, [ndim]      original shape of tensor i (i indexes `names`)

    dense    t{i}.dense    original dtype, original shape
    csr      t{i}.data     original dtype, [nnz]     values, row-major order
             t{i}.indices  uint8/16/32/64, [nnz]     column of each value: the smallest
                                                     unsigned dtype that holds cols-1
             t{i}.indptr   uint8/16/32/64, [rows+1]  row i's values are data[indptr[i]:
                                                     indptr[i+1]]; smallest dtype holding nnz
    bitmask  t{i}.mask     uint8, [ceil(size/8)]     np.packbits (big bit order) of the
                                                     C-order flattened nonzero mask
             t{i}.data     original dtype, [nnz]     the nonzero values in C order

CSR works on a 2-D view of the tensor: `[shape[0], prod(shape[1:])]`, so a 4-D conv weight
`[out, in, kh, kw]` is `[out, in*kh*kw]`; a vector is one row `[1, n]`; a scalar `[1, 1]`.
"Nonzero" means a nonzero bit pattern (see `encodings`): -0.0 is kept as a value.
Tensor names never become member names: `t{i}` indexes `names`, so any name is safe.
"""

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pruning.formats import encodings as enc
from pruning.formats.errors import SparseFormatError

FORMAT_VERSION = 1

# Measured: np.savez adds about 250 bytes per member (a 128-byte .npy header plus zip64 local
# and central headers). Counting it keeps tiny tensors dense instead of splitting them into
# three members that cost more than they save.
MEMBER_OVERHEAD_BYTES = 256

_ROLES: dict[enc.Encoding, tuple[str, ...]] = {
    "dense": ("dense",),
    "csr": ("data", "indices", "indptr"),
    "bitmask": ("mask", "data"),
}


@dataclass(frozen=True)
class TensorChoice:
    """What one tensor would cost in each encoding (payload plus member overhead)."""

    name: str
    chosen: enc.Encoding
    cost_bytes: dict[str, int]


@dataclass(frozen=True)
class SparseNpz:
    path: Path
    tensors: tuple[TensorChoice, ...]

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def cheapest(candidates: Sequence[enc.Encoded]) -> enc.Encoded:
    """The smallest encoding counting member overhead; on a tie the earliest (dense first)."""
    return min(candidates, key=container_cost)


def container_cost(encoded: enc.Encoded) -> int:
    return encoded.payload_bytes + MEMBER_OVERHEAD_BYTES * len(encoded.arrays)


def choose_encoding(array: npt.NDArray[np.generic]) -> tuple[enc.Encoded, dict[str, int]]:
    """The encoding `encode_sparse_npz` stores `array` in, and what each would cost. Costs
    are computed from the counts (exact, see `enc.payload_bytes`); only the winner is built."""
    costs = encoding_costs(array.shape, array.dtype, enc.count_nonzero_bits(array))
    chosen = min(enc.ENCODINGS, key=lambda name: costs[name])  # on a tie the earliest
    return enc.encode(array, chosen), {str(name): cost for name, cost in costs.items()}


def encoding_costs(
    shape: tuple[int, ...], dtype: np.dtype[np.generic], nonzeros: int
) -> dict[enc.Encoding, int]:
    """`container_cost` of each encoding, from the counts alone."""
    return {
        name: enc.payload_bytes(shape, dtype, nonzeros, name)
        + MEMBER_OVERHEAD_BYTES * len(_ROLES[name])
        for name in enc.ENCODINGS
    }


def encode_sparse_npz(tensors: Mapping[str, npt.NDArray[np.generic]], path: Path) -> SparseNpz:
    """Write `tensors` to `path` (atomically: a crash leaves no half-written file)."""
    members: dict[str, npt.NDArray[np.generic]] = {}
    choices = []
    for index, (name, array) in enumerate(tensors.items()):
        if name.endswith("\0"):  # numpy's fixed-width strings drop trailing NULs on load
            raise SparseFormatError(f"tensor name {name!r} ends in a NUL character")
        enc.check_numeric(name, array)
        best, costs = choose_encoding(array)
        members[f"t{index}.shape"] = np.asarray(array.shape, dtype=np.int64)
        members.update({f"t{index}.{role}": a for role, a in best.arrays.items()})
        choices.append(TensorChoice(name, best.encoding, costs))
    members.update(_catalogue(tensors, [c.chosen for c in choices]))
    _save_atomically(path, members)
    return SparseNpz(path, tuple(choices))


def decode_sparse_npz(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    """Every tensor of a sparse npz, bit for bit as it was encoded."""
    with _open_npz(path) as members:
        version = members["format_version"]
        if version.shape != () or int(version) != FORMAT_VERSION:
            raise SparseFormatError(f"{path}: format_version {version!r} is not {FORMAT_VERSION}")
        names, encodings, dtypes = (_strings(members, k) for k in ("names", "encodings", "dtypes"))
        if not len(names) == len(encodings) == len(dtypes):
            raise SparseFormatError(f"{path}: names, encodings and dtypes differ in length")
        return {
            name: _decode_tensor(members, index, encoding, dtype)
            for index, (name, encoding, dtype) in enumerate(
                zip(names, encodings, dtypes, strict=True)
            )
        }


def _catalogue(
    tensors: Mapping[str, npt.NDArray[np.generic]], chosen: list[enc.Encoding]
) -> dict[str, npt.NDArray[np.generic]]:
    # str arrays become fixed-width unicode ("<U"), never object arrays, so no pickle.
    return {
        "format_version": np.asarray(FORMAT_VERSION, dtype=np.uint16),
        "names": np.asarray(list(tensors), dtype=np.str_),
        "encodings": np.asarray(chosen, dtype=np.str_),
        "dtypes": np.asarray([a.dtype.str for a in tensors.values()], dtype=np.str_),
    }


def _decode_tensor(
    members: Mapping[str, npt.NDArray[np.generic]], index: int, encoding: str, dtype: str
) -> npt.NDArray[np.generic]:
    if encoding not in _ROLES:
        raise SparseFormatError(f"tensor {index}: unknown encoding {encoding!r}")
    kind: enc.Encoding = encoding
    shape_array = members[f"t{index}.shape"]
    if (
        shape_array.dtype != np.int64
        or shape_array.ndim != 1
        or (shape_array.astype(np.int64) < 0).any()
    ):
        raise SparseFormatError(f"tensor {index}: shape must be a 1-D non-negative int64 array")
    arrays = {role: members[f"t{index}.{role}"] for role in _ROLES[kind]}
    values = arrays["dense" if kind == "dense" else "data"]
    if values.dtype.str != dtype:
        raise SparseFormatError(f"tensor {index}: values are {values.dtype.str}, not {dtype}")
    return enc.decode(enc.Encoded(kind, arrays), tuple(int(d) for d in shape_array))


@contextmanager
def _open_npz(path: Path) -> Iterator[Mapping[str, npt.NDArray[np.generic]]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise SparseFormatError(f"{path} holds a single array, not a sparse npz")
            yield _ReadMembers(npz)
    except (ValueError, OSError, EOFError) as error:
        if isinstance(error, SparseFormatError):
            raise
        raise SparseFormatError(f"{path} is not a readable sparse npz: {error}") from error


class _ReadMembers(Mapping[str, npt.NDArray[np.generic]]):
    """Members read on demand; a missing one is a format error, not a KeyError."""

    def __init__(self, npz: np.lib.npyio.NpzFile) -> None:
        self._npz = npz

    def __getitem__(self, key: str) -> npt.NDArray[np.generic]:
        if key not in self._npz.files:
            raise SparseFormatError(f"member {key!r} is missing")
        array: npt.NDArray[np.generic] = self._npz[key]
        return array

    def __iter__(self) -> Iterator[str]:
        return iter(self._npz.files)

    def __len__(self) -> int:
        return len(self._npz.files)


def _strings(members: Mapping[str, npt.NDArray[np.generic]], key: str) -> list[str]:
    array = members[key]
    if array.dtype.kind != "U" or array.ndim != 1:
        raise SparseFormatError(f"member {key!r} must be a 1-D unicode array")
    return [str(s) for s in array]


def _save_atomically(path: Path, members: Mapping[str, npt.NDArray[np.generic]]) -> None:
    # np.savez appends ".npz" to names without it; a temporary name ending in .npz avoids that.
    partial = path.with_name(f".{path.name}.partial.npz")
    try:
        np.savez(partial, allow_pickle=False, **members)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
