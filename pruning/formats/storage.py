"""How many bytes pruned weights take in each format, measured, next to the entropy bound.

Dense float32 costs 32 bits per weight. Pruning keeps `nnz` weights, so storing only them costs
32 bits * nnz plus alpha, the cost of saying where they are (the lecture's "64 bits + alpha").
The floor below puts alpha at its information-theoretic minimum for an unstructured mask,
n*H(p) bits, so each measured format shows how much of alpha it wastes.
"""

import math
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pruning.formats import encodings as enc
from pruning.formats.sparse_npz import cheapest

# The levels a user gets from the command-line tools without flags.
ZIP_LEVEL = 6
ZSTD_LEVEL = 3
VALUE_BITS = 32
_CHUNK = 1 << 20

METHOD = {
    "dense_bytes": "4 bytes (float32) per element of the given tensors, whatever their dtype",
    "csr": (
        "sum over tensors of the CSR arrays' bytes, encoded here from the arrays: values in "
        "the tensor's dtype, column indices in the smallest unsigned dtype that fits, row "
        "pointers; 2-D view [shape[0], prod(rest)]; no container"
    ),
    "bitmask": (
        "sum over tensors of one bit per element (np.packbits) plus the nonzero values in "
        "the tensor's dtype, encoded here from the arrays; no container"
    ),
    "<artifact>": "size of that file on disk",
    "<artifact>_zip": f"size of a zip archive of that file (deflate, level {ZIP_LEVEL}), written",
    "<artifact>_zstd": f"size of one zstd frame (level {ZSTD_LEVEL}) of that file, compressed here",
    "ratios": "bytes of each format / dense_bytes",
    "floor": (
        "computed, not measured: per tensor n·H(p) bits for the mask (H the binary entropy of "
        "its density p: the least a coder spends on a mask whose elements are independent with "
        "that density) plus 32 bits per kept value, summed. It bounds formats that store the "
        "values as raw float32; a compressor can go below it by also squeezing the values "
        "(float32 exponents carry well under 8 bits) or a structured mask (channels, N:M)"
    ),
    "nonzeros": "elements whose bit pattern is not all zeros (-0.0 counts as a value)",
}


def storage_report(
    tensors: Mapping[str, npt.NDArray[np.generic]], artifacts: Mapping[str, Path]
) -> dict[str, Any]:
    """Bytes per format for `tensors`, and for each artifact (e.g. `file`, `sparse_npz`,
    `onnx_sparse`) its size, zipped size and zstd size; `ratios` are to dense float32."""
    layers = [_layer(name, array) for name, array in tensors.items()]
    dense = sum(layer["dense_bytes"] for layer in layers)
    formats = {
        "csr": sum(layer["csr_bytes"] for layer in layers),
        "bitmask": sum(layer["bitmask_bytes"] for layer in layers),
    }
    method = {k: v for k, v in METHOD.items() if not k.startswith("<artifact>")}
    for name, path in artifacts.items():
        formats.update(_artifact_sizes(name, path, method))
    floor_bits = sum(layer["floor_bits"] for layer in layers)
    return {
        "dense_bytes": dense,
        "parameters": sum(layer["parameters"] for layer in layers),
        "nonzeros": sum(layer["nonzeros"] for layer in layers),
        "formats": formats,
        "ratios": {name: _ratio(size, dense) for name, size in formats.items()},
        "floor": {
            "bits": floor_bits,
            "bytes": floor_bits / 8,
            "ratio": _ratio(floor_bits / 8, dense),
        },
        "layers": layers,
        "method": method,
    }


def entropy_floor_bits(parameters: int, nonzeros: int) -> float:
    """n·H(p) for the mask plus 32 bits per kept value (a bound, see METHOD["floor"])."""
    return parameters * binary_entropy(nonzeros / parameters if parameters else 0.0) + (
        VALUE_BITS * nonzeros
    )


def binary_entropy(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def _layer(name: str, array: npt.NDArray[np.generic]) -> dict[str, Any]:
    candidates = [enc.encode(array, e) for e in enc.ENCODINGS]
    by_name = {c.encoding: c for c in candidates}
    nonzeros = int(enc.nonzero_mask(array).sum())
    return {
        "name": name,
        "shape": list(array.shape),
        "parameters": int(array.size),
        "nonzeros": nonzeros,
        "density": nonzeros / array.size if array.size else 0.0,
        "dense_bytes": 4 * int(array.size),
        "csr_bytes": by_name["csr"].payload_bytes,
        "bitmask_bytes": by_name["bitmask"].payload_bytes,
        "floor_bits": entropy_floor_bits(int(array.size), nonzeros),
        "sparse_npz_encoding": cheapest(candidates).encoding,
    }


def _artifact_sizes(name: str, path: Path, method: dict[str, str]) -> dict[str, int]:
    for suffix in ("", "_zip", "_zstd"):
        method[f"{name}{suffix}"] = METHOD[f"<artifact>{suffix}"].replace(
            "that file", f"`{path.name}`"
        )
    sizes = {name: path.stat().st_size, f"{name}_zip": zipped_size(path)}
    zstd = zstd_size(path)
    if zstd is None:
        method[f"{name}_zstd"] = "not measured: the zstandard package is not installed"
    else:
        sizes[f"{name}_zstd"] = zstd
    return sizes


def zipped_size(path: Path) -> int:
    """Bytes of a real zip archive holding `path`, written to a scratch directory."""
    with tempfile.TemporaryDirectory(prefix="shears-zip-") as scratch:
        archive = Path(scratch) / "artifact.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as z:
            z.write(path, arcname=path.name)
        return archive.stat().st_size


def zstd_size(path: Path) -> int | None:
    """Bytes of the zstd frame of `path`, streamed; None without the zstandard package."""
    try:
        import zstandard
    except ImportError:
        return None
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
    size = 0
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            size += len(compressor.compress(chunk))
    return size + len(compressor.flush())


def _ratio(size: float, dense: int) -> float:
    return size / dense if dense else 0.0
