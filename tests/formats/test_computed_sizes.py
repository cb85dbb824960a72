"""Sizes computed from counts equal the bytes the real encoders write, for any shape, dtype
and sparsity; so the report can state them without encoding anything."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pruning.formats import choose_encoding
from pruning.formats import encodings as enc
from pruning.formats.sparse_npz import cheapest, container_cost

DTYPES = [np.float32, np.float16, np.float64, np.int8, np.int64, np.uint16, np.bool_, np.complex64]
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def sparse_array(shape: tuple[int, ...], density: float, dtype: type, seed: int) -> np.ndarray:
    """Random values of `dtype`, a `density` share of them kept, and some kept as -0.0 (a
    nonzero bit pattern with a zero value)."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape) * 50
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    array = np.where(rng.random(shape) < density, values, 0).astype(dtype)
    if np.dtype(dtype).kind == "f" and array.size:
        array.reshape(-1)[rng.random(array.size) < 0.05] = -0.0
    return array


shapes = st.lists(st.integers(0, 40), min_size=0, max_size=4).map(tuple)


@SETTINGS
@given(
    shape=shapes,
    density=st.sampled_from([0.0, 0.01, 0.1, 0.5, 0.9, 1.0]),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_computed_bytes_equal_the_encoded_bytes(
    shape: tuple[int, ...], density: float, dtype: type, seed: int
) -> None:
    array = sparse_array(shape, density, dtype, seed)
    nonzeros = enc.count_nonzero_bits(array)
    assert nonzeros == int(enc.nonzero_mask(array).sum())
    for encoding in enc.ENCODINGS:
        encoded = enc.encode(array, encoding).payload_bytes
        assert enc.payload_bytes(array.shape, array.dtype, nonzeros, encoding) == encoded


@pytest.mark.parametrize(
    ("shape", "density"),
    [
        ((300, 20), 0.9),  # cols 20: uint8 indices; nnz over 255: uint16 row pointers
        ((3, 300), 0.5),  # cols 300: uint16 indices
        ((2, 70_000), 0.3),  # cols past 65535: uint32 indices, nnz past 65535: uint32 pointers
        ((64, 3, 3, 3), 0.2),  # a conv kernel, viewed [64, 27]
        ((1, 1, 1), 0.0),
        ((), 1.0),
        ((0, 5), 0.5),
    ],
)
def test_index_widths_at_their_boundaries_are_computed_as_encoded(
    shape: tuple[int, ...], density: float
) -> None:
    array = sparse_array(shape, density, np.float32, seed=1)
    nonzeros = enc.count_nonzero_bits(array)
    for encoding in enc.ENCODINGS:
        assert enc.payload_bytes(shape, array.dtype, nonzeros, encoding) == (
            enc.encode(array, encoding).payload_bytes
        )


@SETTINGS
@given(shape=shapes, density=st.sampled_from([0.0, 0.05, 0.4, 0.7, 1.0]), seed=st.integers(0, 999))
def test_sparse_npz_chooses_what_encoding_everything_would_choose(
    shape: tuple[int, ...], density: float, seed: int
) -> None:
    array = sparse_array(shape, density, np.float32, seed)
    every = [enc.encode(array, name) for name in enc.ENCODINGS]
    chosen, costs = choose_encoding(array)
    assert chosen.encoding == cheapest(every).encoding
    assert costs == {e.encoding: container_cost(e) for e in every}
    assert enc.decode(chosen, array.shape).tobytes() == array.tobytes()  # bit for bit
