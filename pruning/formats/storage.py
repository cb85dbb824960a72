"""How many bytes pruned weights take in each format, next to the entropy bound.

Dense float32 costs 32 bits per weight. Pruning keeps `nnz` weights, so storing only them costs
32 bits * nnz plus alpha, the cost of saying where they are (the lecture's "64 bits + alpha").
The floor below puts alpha at its information-theoretic minimum for an unstructured mask,
n*H(p) bits, so each format shows how much of alpha it wastes.

Each figure says how it was obtained (`obtained`): CSR and bitmask sizes are computed from
each tensor's shape, dtype and nonzero count (exact: the encoders' array lengths follow from
those counts, a test holds them equal), files are measured on disk, and compressed sizes are
measured or estimated from a sample as the spec's `report.compressed_sizes` asks.
"""

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pruning.formats import encodings as enc
from pruning.formats.compressed import (
    ZIP_LEVEL,
    ZSTD_LEVEL,
    Compressed,
    CompressedSizes,
    compressed_sizes,
)
from pruning.formats.sparse_npz import encoding_costs

VALUE_BITS = 32
COMPUTED, MEASURED, ESTIMATED = "computed from counts", "measured", "estimated from a sample"

METHOD = {
    "dense_bytes": "4 bytes (float32) per element of the given tensors, whatever their dtype",
    "csr": (
        "computed from counts, exact: sum over tensors of the CSR arrays' bytes as the encoder "
        "writes them: nnz values in the tensor's dtype, nnz column indices in the smallest "
        "unsigned dtype that holds cols-1, rows+1 row pointers in the smallest that holds nnz; "
        "2-D view [shape[0], prod(rest)]; no container"
    ),
    "bitmask": (
        "computed from counts, exact: sum over tensors of one bit per element (np.packbits, "
        "ceil(n/8) bytes) plus the nnz values in the tensor's dtype; no container"
    ),
    "<artifact>": "measured: size of that file on disk",
    "<artifact>_zip": f"size of a zip archive of that file (deflate, level {ZIP_LEVEL})",
    "<artifact>_zstd": f"size of one zstd frame (level {ZSTD_LEVEL}) of that file",
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
    tensors: Mapping[str, npt.NDArray[np.generic]],
    artifacts: Mapping[str, Path],
    compressed: Compressed = "sampled",
    counted: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Bytes per format for `tensors`, and for each artifact (e.g. `file`, `sparse_npz`,
    `onnx_sparse`) its size and, unless `compressed` is 'none', its zipped and zstd sizes;
    `ratios` are to dense float32, `obtained` says how each format's figure was got.
    `counted`: the per-tensor figures already computed (`layer_storage`), in place of
    `tensors` (the streaming engine counts them as it writes each tensor)."""
    layers = counted if counted is not None else [_layer(n, a) for n, a in tensors.items()]
    dense = sum(layer["dense_bytes"] for layer in layers)
    formats = {
        "csr": sum(layer["csr_bytes"] for layer in layers),
        "bitmask": sum(layer["bitmask_bytes"] for layer in layers),
    }
    obtained = {"csr": COMPUTED, "bitmask": COMPUTED}
    method = {k: v for k, v in METHOD.items() if not k.startswith("<artifact>")}
    for name, path in artifacts.items():
        formats.update(_artifact_sizes(name, path, compressed, method, obtained))
    if compressed == "none" and artifacts:
        method["compressed"] = "not asked for: the spec's report.compressed_sizes is 'none'"
    floor_bits = sum(layer["floor_bits"] for layer in layers)
    return {
        "dense_bytes": dense,
        "parameters": sum(layer["parameters"] for layer in layers),
        "nonzeros": sum(layer["nonzeros"] for layer in layers),
        "formats": formats,
        "obtained": obtained,
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
    return layer_storage(name, tuple(array.shape), array.dtype, enc.count_nonzero_bits(array))


def layer_storage(
    name: str, shape: tuple[int, ...], dtype: np.dtype[Any], nonzeros: int
) -> dict[str, Any]:
    """One tensor's line of the storage report, from its counts."""
    size = int(np.prod(shape, dtype=np.int64))
    return {
        "name": name,
        "shape": list(shape),
        "parameters": size,
        "nonzeros": nonzeros,
        "density": nonzeros / size if size else 0.0,
        "dense_bytes": 4 * size,
        "csr_bytes": enc.payload_bytes(shape, dtype, nonzeros, "csr"),
        "bitmask_bytes": enc.payload_bytes(shape, dtype, nonzeros, "bitmask"),
        "floor_bits": entropy_floor_bits(size, nonzeros),
        "sparse_npz_encoding": _cheapest(encoding_costs(shape, dtype, nonzeros)),
    }


def _cheapest(costs: Mapping[enc.Encoding, int]) -> str:
    return min(enc.ENCODINGS, key=lambda name: costs[name])  # on a tie the earliest


def _artifact_sizes(
    name: str,
    path: Path,
    compressed: Compressed,
    method: dict[str, str],
    obtained: dict[str, str],
) -> dict[str, int]:
    def say(suffix: str, how: str) -> None:
        what = METHOD[f"<artifact>{suffix}"].replace("that file", f"`{path.name}`")
        method[f"{name}{suffix}"] = f"{what}; {how}" if how else what

    say("", "")
    sizes, obtained[name] = {name: path.stat().st_size}, MEASURED
    found = compressed_sizes(path, compressed)
    if found is None:
        return sizes
    for suffix, size, codec in (
        ("_zip", found.zip, f"deflate level {ZIP_LEVEL}"),
        ("_zstd", found.zstd, f"zstd level {ZSTD_LEVEL}"),
    ):
        if size is None:
            say(suffix, "not measured: the zstandard package is not installed")
            continue
        say(suffix, found.describe(codec))
        sizes[f"{name}{suffix}"] = size
        obtained[f"{name}{suffix}"] = _how(found)
    return sizes


def _how(found: CompressedSizes) -> str:
    return ESTIMATED if found.estimated else MEASURED


def _ratio(size: float, dense: int) -> float:
    return size / dense if dense else 0.0
