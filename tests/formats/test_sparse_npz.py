"""The sparse npz gives back exactly the arrays it was given, in the smallest encoding."""

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pruning.formats import SparseFormatError, decode_sparse_npz, encode_sparse_npz
from tests.formats.factories import MODELS, prune_smallest, sparse_matrix, weights


def assert_bit_identical(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name, array in want.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].shape == array.shape, name
        assert np.array_equal(got[name], array), name
        assert got[name].tobytes() == array.tobytes(), name


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_pruned_model_weights_round_trip_bit_for_bit(model_name: str, tmp_path: Path) -> None:
    make, _ = MODELS[model_name]
    pruned = weights(prune_smallest(make()))
    encode_sparse_npz(pruned, tmp_path / "w.npz")
    assert_bit_identical(decode_sparse_npz(tmp_path / "w.npz"), pruned)


@pytest.mark.parametrize(
    "dtype", ["<f4", "<f2", "<f8", ">f4", "<i8", "|i1", "|u1", "|b1", "<c8", "<u4"]
)
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.97, 1.0])
def test_every_numeric_dtype_round_trips_bit_for_bit(
    dtype: str, sparsity: float, tmp_path: Path
) -> None:
    values = sparse_matrix((9, 7, 3), sparsity) * 50
    array = (np.abs(values) if np.dtype(dtype).kind in "ub" else values).astype(dtype)
    encode_sparse_npz({"w": array}, tmp_path / "w.npz")
    assert_bit_identical(decode_sparse_npz(tmp_path / "w.npz"), {"w": array})


def test_negative_zero_survives_as_a_stored_value(tmp_path: Path) -> None:
    array = np.zeros((40, 40), dtype=np.float32)
    array[3, 5], array[7, 1], array[9, 9] = -0.0, 1.5, -2.25
    encode_sparse_npz({"w": array}, tmp_path / "w.npz")
    decoded = decode_sparse_npz(tmp_path / "w.npz")["w"]
    assert np.signbit(decoded[3, 5])
    assert decoded.tobytes() == array.tobytes()


def test_odd_shapes_and_names_round_trip(tmp_path: Path) -> None:
    tensors = {
        "scalar": np.array(-0.0, dtype=np.float32),
        "empty": np.zeros((0, 5), dtype=np.float32),
        "../../etc/passwd": sparse_matrix((300,), 0.9),
        "<script>alert(1)</script>": sparse_matrix((2, 3, 4, 5, 6), 0.9),
        "onnx::Gemm_12/weight.ünï": sparse_matrix((70, 300), 0.95),
    }
    encode_sparse_npz(tensors, tmp_path / "w.npz")
    assert_bit_identical(decode_sparse_npz(tmp_path / "w.npz"), tensors)
    with zipfile.ZipFile(tmp_path / "w.npz") as archive:
        assert all(
            n.startswith(("t", "names", "encodings", "dtypes", "format_version"))
            for n in archive.namelist()
        )


def test_a_95_percent_sparse_tensor_is_stored_sparse_in_the_smaller_encoding(
    tmp_path: Path,
) -> None:
    result = encode_sparse_npz({"w": sparse_matrix((256, 512), 0.95)}, tmp_path / "w.npz")
    (choice,) = result.tensors
    assert choice.chosen in ("csr", "bitmask")
    assert choice.cost_bytes[choice.chosen] == min(choice.cost_bytes.values())
    assert choice.cost_bytes[choice.chosen] < choice.cost_bytes["dense"] / 4


def test_a_10_percent_sparse_tensor_stays_dense_or_takes_a_bitmask(tmp_path: Path) -> None:
    result = encode_sparse_npz({"w": sparse_matrix((256, 512), 0.10)}, tmp_path / "w.npz")
    (choice,) = result.tensors
    assert choice.chosen in ("dense", "bitmask")
    assert choice.cost_bytes[choice.chosen] == min(choice.cost_bytes.values())


def test_tiny_and_dense_tensors_stay_dense(tmp_path: Path) -> None:
    tensors = {"bias": np.array([0.0, 1.0, 0.0, 0.0], np.float32), "w": sparse_matrix((64, 64), 0)}
    result = encode_sparse_npz(tensors, tmp_path / "w.npz")
    assert [c.chosen for c in result.tensors] == ["dense", "dense"]


def test_each_tensor_chooses_its_own_encoding(tmp_path: Path) -> None:
    tensors = {"sparse": sparse_matrix((128, 128), 0.99), "dense": sparse_matrix((128, 128), 0.0)}
    result = encode_sparse_npz(tensors, tmp_path / "w.npz")
    chosen = {c.name: c.chosen for c in result.tensors}
    assert chosen["dense"] == "dense" and chosen["sparse"] != "dense"


def test_layout_matches_the_documented_keys_and_dtypes(tmp_path: Path) -> None:
    conv = sparse_matrix((64, 16, 3, 3), 0.99)  # viewed as [64, 144] for CSR
    encode_sparse_npz({"conv.weight": conv}, tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz", allow_pickle=False) as npz:
        assert int(npz["format_version"]) == 1
        assert list(npz["names"]) == ["conv.weight"]
        assert list(npz["dtypes"]) == ["<f4"]
        assert list(npz["t0.shape"]) == [64, 16, 3, 3]
        assert npz["encodings"][0] == "csr"
        assert npz["t0.indptr"].shape == (65,)
        assert npz["t0.indices"].dtype == np.uint8  # columns < 144
        assert npz["t0.data"].dtype == np.float32
        assert npz["t0.indptr"][-1] == np.count_nonzero(conv)


def test_bitmask_layout_is_packed_bits_of_the_flat_mask(tmp_path: Path) -> None:
    array = sparse_matrix((64, 64), 0.5)
    encode_sparse_npz({"w": array}, tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz", allow_pickle=False) as npz:
        assert npz["encodings"][0] == "bitmask"
        assert np.array_equal(npz["t0.mask"], np.packbits(array.reshape(-1) != 0))
        assert np.array_equal(npz["t0.data"], array[array != 0])


class _Tripwire:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_npz_with_an_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    tripwire = tmp_path / "unpickled"
    np.savez(
        tmp_path / "evil.npz",
        format_version=np.asarray(1, dtype=np.uint16),
        names=np.array([_Tripwire(tripwire)], dtype=object),
    )
    with pytest.raises(SparseFormatError, match="not a readable sparse npz"):
        decode_sparse_npz(tmp_path / "evil.npz")
    assert not tripwire.exists()


def test_a_pickle_file_is_refused_without_unpickling(tmp_path: Path) -> None:
    tripwire = tmp_path / "unpickled"
    (tmp_path / "evil.npz").write_bytes(pickle.dumps({"w": _Tripwire(tripwire)}))
    with pytest.raises(SparseFormatError):
        decode_sparse_npz(tmp_path / "evil.npz")
    assert not tripwire.exists()


def test_corrupt_column_indices_are_refused(tmp_path: Path) -> None:
    encode_sparse_npz({"w": sparse_matrix((64, 250), 0.995)}, tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz", allow_pickle=False) as npz:
        members = {key: npz[key] for key in npz.files}
    members["t0.indices"][0] = 255  # the matrix has 250 columns
    np.savez(tmp_path / "bad.npz", **members)
    with pytest.raises(SparseFormatError):
        decode_sparse_npz(tmp_path / "bad.npz")


def test_a_name_that_would_not_survive_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SparseFormatError, match="NUL"):
        encode_sparse_npz({"w\0": np.zeros(3, np.float32)}, tmp_path / "w.npz")


def test_non_numeric_tensors_are_refused_when_encoding(tmp_path: Path) -> None:
    with pytest.raises(SparseFormatError, match="'labels'"):
        encode_sparse_npz({"labels": np.array(["a", "b"])}, tmp_path / "w.npz")
    assert not (tmp_path / "w.npz").exists()
