"""One tensor as dense, CSR or bitmask arrays, and back, bit for bit; and the bytes each
encoding takes, computed from the counts without encoding.

An element counts as nonzero when any of its bytes is nonzero, not when `x != 0`: negative
zero (and any NaN payload) is then stored as a value, so decoding restores the exact bits.
Zero-filled memory is the all-zero bit pattern for every numeric dtype, which is what a
decoder starts from.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from pruning.formats.errors import SparseFormatError

Encoding = Literal["dense", "csr", "bitmask"]
ENCODINGS: tuple[Encoding, ...] = ("dense", "csr", "bitmask")

# bool, signed, unsigned, float, complex: fixed-size numbers whose zero is all-zero bytes.
_NUMERIC_KINDS = frozenset("biufc")


@dataclass(frozen=True)
class Encoded:
    """The arrays that store one tensor in one encoding, keyed by their role."""

    encoding: Encoding
    arrays: dict[str, npt.NDArray[np.generic]]

    @property
    def payload_bytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays.values())


def check_numeric(name: str, array: npt.NDArray[np.generic]) -> None:
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise SparseFormatError(
            f"tensor {name!r} has dtype {array.dtype}: only bool, integer, float and complex "
            "tensors can be stored"
        )


def nonzero_mask(array: npt.NDArray[np.generic]) -> npt.NDArray[np.bool_]:
    """True where an element's bit pattern is not all zeros, in C order, shaped like `array`."""
    flat = np.ascontiguousarray(array).reshape(-1)
    as_bytes = flat.view(np.uint8).reshape(flat.size, array.dtype.itemsize)
    return np.asarray(as_bytes.any(axis=1), dtype=np.bool_).reshape(array.shape)


def count_nonzero_bits(array: npt.NDArray[np.generic]) -> int:
    """How many elements `nonzero_mask` marks, without building the mask: an element of 1, 2,
    4 or 8 bytes is nonzero exactly when its bytes read as an unsigned integer are."""
    flat = np.ascontiguousarray(array).reshape(-1)
    itemsize = flat.dtype.itemsize
    if itemsize in (1, 2, 4, 8):
        return int(np.count_nonzero(flat.view(f"u{itemsize}")))
    return int(nonzero_mask(flat).sum())


def payload_bytes(
    shape: tuple[int, ...], dtype: np.dtype[np.generic], nonzeros: int, encoding: Encoding
) -> int:
    """The exact `Encoded.payload_bytes` that `encode(array, encoding)` would give for an
    array of this shape and dtype with `nonzeros` nonzero bit patterns: every array the
    encoders write has a length fixed by these counts and a dtype fixed by these sizes."""
    size = int(np.prod(shape, dtype=np.int64))
    values = nonzeros * dtype.itemsize
    if encoding == "dense":
        return size * dtype.itemsize
    if encoding == "bitmask":
        return (size + 7) // 8 + values
    rows, cols = matrix_shape(shape)
    indices = nonzeros * smallest_uint(max(cols - 1, 0)).itemsize
    return values + indices + (rows + 1) * smallest_uint(nonzeros).itemsize


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The 2-D view CSR uses: `[out, prod(rest)]`; a vector is one row, a scalar is 1x1."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return 1, shape[0]
    return shape[0], int(np.prod(shape[1:], dtype=np.int64))


def smallest_uint(max_value: int) -> np.dtype[np.unsignedinteger]:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def encode_dense(array: npt.NDArray[np.generic]) -> Encoded:
    return Encoded("dense", {"dense": np.asarray(array, order="C")})


def encode_csr(array: npt.NDArray[np.generic]) -> Encoded:
    rows, cols = matrix_shape(array.shape)
    matrix = np.ascontiguousarray(array).reshape(rows, cols)
    row_of, col_of = np.nonzero(nonzero_mask(matrix))
    counts = np.bincount(row_of, minlength=rows)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "data": matrix[row_of, col_of],
        "indices": col_of.astype(smallest_uint(max(cols - 1, 0))),
        "indptr": indptr.astype(smallest_uint(len(row_of))),
    }
    return Encoded("csr", arrays)


def encode_bitmask(array: npt.NDArray[np.generic]) -> Encoded:
    flat = np.ascontiguousarray(array).reshape(-1)
    mask = nonzero_mask(flat)
    return Encoded("bitmask", {"mask": np.packbits(mask), "data": flat[mask]})


def encode(array: npt.NDArray[np.generic], encoding: Encoding) -> Encoded:
    encoders = {"dense": encode_dense, "csr": encode_csr, "bitmask": encode_bitmask}
    return encoders[encoding](array)


def decode(encoded: Encoded, shape: tuple[int, ...]) -> npt.NDArray[np.generic]:
    """Rebuild a tensor; raises SparseFormatError when the arrays do not fit together."""
    if encoded.encoding == "dense":
        return _decode_dense(encoded.arrays, shape)
    if encoded.encoding == "csr":
        return _decode_csr(encoded.arrays, shape)
    return _decode_bitmask(encoded.arrays, shape)


def _decode_dense(
    arrays: dict[str, npt.NDArray[np.generic]], shape: tuple[int, ...]
) -> npt.NDArray[np.generic]:
    dense = arrays["dense"]
    if dense.shape != shape:
        raise SparseFormatError(f"dense array has shape {dense.shape}, expected {shape}")
    return dense


def _decode_csr(
    arrays: dict[str, npt.NDArray[np.generic]], shape: tuple[int, ...]
) -> npt.NDArray[np.generic]:
    data, indices, indptr = arrays["data"], arrays["indices"], arrays["indptr"]
    rows, cols = matrix_shape(shape)
    _require_unsigned(indices, "indices")
    _require_unsigned(indptr, "indptr")
    counts = indptr[1:].astype(np.int64) - indptr[:-1].astype(np.int64)
    if indptr.shape != (rows + 1,) or indptr[0] != 0 or (counts < 0).any():
        raise SparseFormatError(f"CSR row pointers do not describe {rows} rows")
    if not data.ndim == indices.ndim == 1 or not len(data) == len(indices) == int(indptr[-1]):
        raise SparseFormatError("CSR values, column indices and row pointers disagree on nnz")
    if len(indices) and int(indices.max()) >= cols:
        raise SparseFormatError(f"CSR column index out of range for {cols} columns")
    matrix = np.zeros((rows, cols), dtype=data.dtype)
    matrix[np.repeat(np.arange(rows), counts), indices.astype(np.int64)] = data
    return matrix.reshape(shape)


def _decode_bitmask(
    arrays: dict[str, npt.NDArray[np.generic]], shape: tuple[int, ...]
) -> npt.NDArray[np.generic]:
    packed, data = arrays["mask"], arrays["data"]
    size = int(np.prod(shape, dtype=np.int64))
    if packed.dtype != np.uint8 or packed.shape != ((size + 7) // 8,):
        raise SparseFormatError(f"bitmask must be {(size + 7) // 8} uint8 bytes for {size} values")
    mask = np.unpackbits(packed.view(np.uint8), count=size).astype(bool)
    if data.ndim != 1 or int(mask.sum()) != len(data):
        raise SparseFormatError("bitmask population count differs from the number of values")
    flat = np.zeros(size, dtype=data.dtype)
    flat[mask] = data
    return flat.reshape(shape)


def _require_unsigned(array: npt.NDArray[np.generic], role: str) -> None:
    if array.dtype.kind != "u" or array.ndim != 1:
        raise SparseFormatError(f"CSR {role} must be a 1-D unsigned integer array")
