"""Storage figures are measured on the real files (compressed sizes measured or estimated
from a sample, labelled), computed from counts for CSR and bitmask, next to a labelled
entropy bound."""

import math
from pathlib import Path

import numpy as np
import pytest

from pruning.formats import encode_sparse_npz, storage_report, write_onnx_sparse
from pruning.formats.compressed import zipped_size, zstd_size
from pruning.formats.storage import binary_entropy
from tests.formats.factories import (
    MODELS,
    export_onnx,
    onnx_initializers,
    prune_smallest,
    sparse_matrix,
    weights,
)

Artifacts = tuple[dict[str, np.ndarray], dict[str, Path]]


@pytest.fixture
def pruned_convnet(tmp_path: Path) -> Artifacts:
    make, input_shape = MODELS["convnet"]
    model = prune_smallest(make())
    onnx_path = export_onnx(model, input_shape, tmp_path / "pruned.onnx")
    tensors = weights(model)
    encode_sparse_npz(tensors, tmp_path / "weights.npz")
    write_onnx_sparse(onnx_path, tmp_path / "sparse.onnx")
    artifacts = {
        "file": onnx_path,
        "sparse_npz": tmp_path / "weights.npz",
        "onnx_sparse": tmp_path / "sparse.onnx",
    }
    return tensors, artifacts


def test_file_figures_equal_the_sizes_on_disk(pruned_convnet: Artifacts) -> None:
    tensors, artifacts = pruned_convnet
    report = storage_report(tensors, artifacts)
    for name, path in artifacts.items():
        assert report["formats"][name] == path.stat().st_size
        assert report["formats"][f"{name}_zip"] > 0
        assert report["formats"][f"{name}_zstd"] > 0
        assert report["ratios"][name] == path.stat().st_size / report["dense_bytes"]


def test_dense_bytes_count_float32_per_weight(pruned_convnet: Artifacts) -> None:
    tensors, artifacts = pruned_convnet
    report = storage_report(tensors, artifacts)
    assert report["dense_bytes"] == 4 * sum(a.size for a in tensors.values())
    assert report["nonzeros"] == sum(np.count_nonzero(a) for a in tensors.values())


def test_in_memory_formats_count_their_arrays() -> None:
    w = sparse_matrix((100, 300), 0.9)  # 3000 nonzeros, 300 columns -> uint16 indices
    report = storage_report({"w": w}, {})
    assert report["formats"]["csr"] == 3000 * 4 + 3000 * 2 + 101 * 2
    assert report["formats"]["bitmask"] == 30000 // 8 + 3000 * 4
    (layer,) = report["layers"]
    assert layer["sparse_npz_encoding"] == "bitmask"


def test_floor_is_the_mask_entropy_plus_32_bits_per_value() -> None:
    report = storage_report({"a": sparse_matrix((64, 64), 0.8), "b": sparse_matrix((10,), 0.0)}, {})
    n, nnz = 4096, 4096 - round(0.8 * 4096)
    expected_a = n * binary_entropy(nnz / n) + 32 * nnz
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert math.isclose(layers["a"]["floor_bits"], expected_a)
    assert layers["b"]["floor_bits"] == 32 * 10  # a dense tensor needs no mask
    assert math.isclose(report["floor"]["bytes"], (expected_a + 320) / 8)
    assert "bound" in report["method"]["floor"]


def test_every_format_is_above_the_floor(pruned_convnet: Artifacts) -> None:
    tensors, artifacts = pruned_convnet
    report = storage_report(tensors, artifacts)
    for name in ("csr", "bitmask", "sparse_npz", "onnx_sparse"):
        assert report["formats"][name] > report["floor"]["bytes"], name


def test_sparse_artifacts_beat_the_dense_file(pruned_convnet: Artifacts) -> None:
    _, artifacts = pruned_convnet
    dense_inits = sum(a.nbytes for a in onnx_initializers(artifacts["file"]).values())
    assert artifacts["onnx_sparse"].stat().st_size < artifacts["file"].stat().st_size
    assert artifacts["sparse_npz"].stat().st_size < dense_inits


def test_every_figure_says_how_it_was_obtained(pruned_convnet: Artifacts) -> None:
    tensors, artifacts = pruned_convnet
    report = storage_report(tensors, artifacts)
    method = report["method"]
    for key in ("dense_bytes", "csr", "bitmask", "floor", *report["formats"]):
        assert method[key]


def test_compressed_sizes_come_from_really_compressing(tmp_path: Path) -> None:
    (tmp_path / "zeros.bin").write_bytes(bytes(1 << 20))
    (tmp_path / "noise.bin").write_bytes(np.random.default_rng(0).bytes(1 << 20))
    artifacts = {"zeros": tmp_path / "zeros.bin", "noise": tmp_path / "noise.bin"}
    formats = storage_report({}, artifacts)["formats"]
    assert formats["zeros_zip"] < 5000 and formats["zeros_zstd"] < 5000
    assert formats["noise_zip"] > 1 << 20 and formats["noise_zstd"] > 1 << 20


def test_binary_entropy_edges() -> None:
    assert binary_entropy(0.0) == binary_entropy(1.0) == 0.0
    assert binary_entropy(0.5) == 1.0


def pruned_weights_file(path: Path, mib: int = 6) -> Path:
    """Float32 weights in bands of different sparsity, as a model file holds its layers."""
    rng = np.random.default_rng(0)
    bands = [0.2, 0.5, 0.8, 0.95]
    n = mib * (1 << 20) // 4 // len(bands)
    layers = [np.where(rng.random(n) < s, 0, rng.standard_normal(n)) for s in bands]
    path.write_bytes(np.concatenate(layers).astype(np.float32).tobytes())
    return path


def test_a_large_file_compressed_size_is_estimated_from_a_sample_and_labelled(
    tmp_path: Path,
) -> None:
    path = pruned_weights_file(tmp_path / "model.bin")
    report = storage_report({}, {"file": path})
    estimate, measured = report["formats"]["file_zip"], zipped_size(path)
    assert abs(estimate - measured) / measured < 0.03
    assert (
        report["obtained"]["file_zip"]
        == report["obtained"]["file_zstd"]
        == ("estimated from a sample")
    )
    assert report["obtained"]["file"] == "measured"
    assert "estimated, not measured: 16 chunks of 256 KiB" in report["method"]["file_zip"]


def test_compressed_sizes_measured_on_request_compress_the_whole_file(tmp_path: Path) -> None:
    path = pruned_weights_file(tmp_path / "model.bin")
    report = storage_report({}, {"file": path}, compressed="measured")
    assert report["formats"]["file_zip"] == zipped_size(path)
    assert report["formats"]["file_zstd"] == zstd_size(path)
    assert report["obtained"]["file_zip"] == "measured"


def test_compressed_sizes_can_be_left_out(pruned_convnet: Artifacts) -> None:
    tensors, artifacts = pruned_convnet
    report = storage_report(tensors, artifacts, compressed="none")
    assert not [name for name in report["formats"] if name.endswith(("_zip", "_zstd"))]
    assert "not asked for" in report["method"]["compressed"]


def test_small_files_are_compressed_whole_and_the_encodings_computed(
    pruned_convnet: Artifacts,
) -> None:
    tensors, artifacts = pruned_convnet
    report = storage_report(tensors, artifacts)
    assert report["obtained"]["onnx_sparse_zip"] == "measured"
    assert report["formats"]["onnx_sparse_zip"] == zipped_size(artifacts["onnx_sparse"])
    assert report["obtained"]["csr"] == report["obtained"]["bitmask"] == "computed from counts"
    assert report["method"]["csr"].startswith("computed from counts, exact")
