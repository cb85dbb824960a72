"""The SparseGPT kernel of issue 14 (float32 blocks with lazy batch updates, float64 only for
the Cholesky factorization) against a plain float64 OBS sweep, the batched calibration
statistics against per-sample sums, and the ``device`` setting."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pruning import prune
from pruning.calibration.capture import layer_inputs
from pruning.calibration.dataset import CalibrationData
from pruning.calibration.geometry import split_rows
from pruning.calibration.stats import column_sq_norms, gram, hessian_of, sq_norms
from pruning.device import resolve_device
from pruning.errors import Unsupported
from pruning.methods.sparsegpt import (
    _invert_lower,
    _upper_cholesky_of_inverse,
    sparsegpt_layer,
)
from pruning.models import open_model
from pruning.models.onnx_model import OnnxModel
from tests.engine.factories import FAST_LATENCY, export_onnx, make_mlp


def _inputs(tokens: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Correlated features (a low-rank mix plus noise), as real layer inputs have."""
    generator = torch.Generator().manual_seed(seed)
    factors = torch.randn(tokens, cols // 3, generator=generator)
    return factors @ torch.randn(cols // 3, cols, generator=generator) + 0.2 * torch.randn(
        tokens, cols, generator=generator
    )


def _hessian(x: torch.Tensor) -> torch.Tensor:
    return 2.0 * x.T @ x / x.shape[0]


def _plain_sparsegpt(
    weights: torch.Tensor, hessian: torch.Tensor, fraction: float, blocksize: int
) -> torch.Tensor:
    """Algorithm 1 written plainly in float64: H^-1 by inversion, its upper Cholesky factor,
    and every column's OBS update applied to all later columns at once (no lazy batches)."""
    w = weights.double().clone()
    h = hessian.double().clone()
    h.diagonal().add_(0.01 * torch.mean(torch.diag(h)))
    hinv = torch.linalg.cholesky(torch.linalg.inv(h), upper=True)
    rows, cols = w.shape
    budget = int(split_rows(1, rows * cols, fraction)[0])
    ends = np.rint(budget * np.minimum(np.arange(0, cols + blocksize, blocksize), cols) / cols)
    for number, i1 in enumerate(range(0, cols, blocksize)):
        i2 = min(i1 + blocksize, cols)
        saliency = w[:, i1:i2] ** 2 / torch.diag(hinv)[i1:i2] ** 2
        k = int(ends[number + 1] - ends[number])
        order = torch.argsort(saliency.flatten())
        mask = torch.zeros(saliency.numel(), dtype=torch.bool)
        mask[order[:k]] = True
        mask = mask.view(saliency.shape)
        for i in range(i1, i2):
            q = w[:, i].masked_fill(mask[:, i - i1], 0.0)
            error = (w[:, i] - q) / hinv[i, i]
            w[:, i:] -= torch.outer(error, hinv[i, i:])
            w[:, i] = q
    return w.float()


def _output_error(x: torch.Tensor, weights: torch.Tensor, pruned: torch.Tensor) -> float:
    return float(torch.linalg.norm(x @ (weights - pruned).T) / torch.linalg.norm(x @ weights.T))


@pytest.mark.parametrize(("rows", "cols", "blocksize"), [(24, 48, 16), (17, 50, 12)])
def test_kernel_agrees_with_a_plain_float64_sweep(rows: int, cols: int, blocksize: int) -> None:
    x = _inputs(400, cols)
    weights = torch.randn(rows, cols, generator=torch.Generator().manual_seed(1))
    hessian = _hessian(x)
    pruned = sparsegpt_layer(weights, hessian, 0.5, blocksize, 0.01)
    reference = _plain_sparsegpt(weights, hessian, 0.5, blocksize)
    agreement = float(((pruned == 0) == (reference == 0)).double().mean())
    assert agreement > 0.98, agreement
    ours, theirs = _output_error(x, weights, pruned), _output_error(x, weights, reference)
    assert ours <= theirs * 1.02 + 1e-6, (ours, theirs)


@pytest.mark.parametrize("fraction", [0.1, 0.37, 0.5, 0.9])
def test_kernel_prunes_exactly_the_rounded_count_over_uneven_blocks(fraction: float) -> None:
    weights = torch.randn(13, 45, generator=torch.Generator().manual_seed(2))
    pruned = sparsegpt_layer(weights, _hessian(_inputs(300, 45)), fraction, 16, 0.01)
    assert int((pruned == 0).sum()) == round(fraction * weights.numel())


def test_kernel_reconstructs_the_output_better_than_magnitude() -> None:
    x = _inputs(600, 64, seed=3)
    weights = torch.randn(32, 64, generator=torch.Generator().manual_seed(3))
    pruned = sparsegpt_layer(weights, _hessian(x), 0.5, 16, 0.01)
    threshold = weights.abs().flatten().kthvalue(weights.numel() // 2).values
    magnitude = weights.masked_fill(weights.abs() <= threshold, 0.0)
    assert _output_error(x, weights, pruned) < 0.7 * _output_error(x, weights, magnitude)


def test_dead_inputs_are_pruned_and_the_count_stays_exact() -> None:
    x = _inputs(300, 40, seed=4)
    x[:, [3, 17, 18]] = 0.0  # inputs that are always zero
    weights = torch.randn(10, 40, generator=torch.Generator().manual_seed(4))
    pruned = sparsegpt_layer(weights, _hessian(x), 0.5, 16, 0.01)
    assert (pruned[:, [3, 17, 18]] == 0).all()
    assert int((pruned == 0).sum()) == 200
    assert torch.isfinite(pruned).all()


def test_n_m_keeps_exactly_n_zeros_per_group_with_dead_inputs() -> None:
    x = _inputs(300, 48, seed=5)
    x[:, 8:11] = 0.0
    weights = torch.randn(12, 48, generator=torch.Generator().manual_seed(5))
    pruned = sparsegpt_layer(weights, _hessian(x), 0.5, 10, 0.01, nm=(2, 4))
    zeros = (pruned.reshape(12, -1, 4) == 0).sum(-1)
    assert (zeros == 2).all()


def test_upper_cholesky_of_the_inverse_matches_float64() -> None:
    h = _hessian(_inputs(500, 150, seed=6))
    h.diagonal().add_(0.01 * torch.mean(torch.diag(h)))
    upper = _upper_cholesky_of_inverse(h)
    expected = torch.linalg.cholesky(torch.linalg.inv(h.double()), upper=True)
    assert upper.dtype == torch.float32
    assert torch.equal(upper, upper.triu())
    assert torch.allclose(upper.double(), expected, rtol=1e-4, atol=1e-5 * expected.abs().max())


def test_a_singular_hessian_is_dampened_harder_not_a_failure() -> None:
    h = _hessian(torch.ones(50, 20))  # rank one, undampened: the Cholesky fails at a pivot
    upper = _upper_cholesky_of_inverse(h)
    assert torch.isfinite(upper).all()
    assert torch.allclose(upper.T @ upper @ (h + 0.2 * torch.eye(20)), torch.eye(20), atol=1e-4)


def test_triangular_inverse_by_halves_is_the_inverse_at_odd_sizes() -> None:
    generator = torch.Generator().manual_seed(7)
    lower = torch.randn(131, 131, generator=generator, dtype=torch.float64).tril()
    lower.diagonal().copy_(2.0 + torch.rand(131, generator=generator, dtype=torch.float64))
    out = torch.zeros_like(lower)
    _invert_lower(lower, out, leaf=8)
    assert torch.allclose(out @ lower, torch.eye(131, dtype=torch.float64), atol=1e-10)


def test_batched_statistics_equal_per_sample_sums_across_chunks() -> None:
    generator = torch.Generator().manual_seed(8)
    samples = [torch.randn(n, 6, generator=generator) for n in (3, 40000, 7)]  # > CHUNK_ROWS
    gram_sum = sum((s.double().T @ s.double() for s in samples), torch.zeros(6, 6))
    norm_sum = sum((s.double().pow(2).sum(0) for s in samples), torch.zeros(6))
    assert gram(samples).dtype == torch.float32
    assert torch.allclose(gram(samples).double(), gram_sum, rtol=1e-4)
    assert torch.allclose(sq_norms(samples).double(), norm_sum, rtol=1e-4)


def test_device_cpu_and_auto_resolve_to_what_torch_has() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_device_cuda_without_a_gpu_is_refused_naming_the_setting() -> None:
    if torch.cuda.is_available():  # the other half of the promise, on a GPU worker
        assert resolve_device("cuda").type == "cuda"
        return
    with pytest.raises(Unsupported, match="SHEARS_DEVICE"):
        resolve_device("cuda")


@pytest.mark.parametrize("name", ["tpu", "cpu:0", "", "cuda:x"])
def test_unknown_device_names_are_refused(name: str) -> None:
    with pytest.raises(Unsupported, match="SHEARS_DEVICE"):
        resolve_device(name)


def test_prune_with_a_wrong_device_fails_before_any_work(tmp_path: Path) -> None:
    model = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    spec = {"method": {"name": "sparsegpt"}, "sparsity": 0.5, "latency": FAST_LATENCY}
    with pytest.raises(Unsupported, match="device"):
        prune(model, spec, tmp_path / "out", device="tpu")
    assert not (tmp_path / "out").exists()


def test_prune_on_cpu_runs_sparsegpt_through_the_device_setting(tmp_path: Path) -> None:
    model = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    rng = np.random.default_rng(0)
    data = tmp_path / "cal.npz"
    np.savez(data, x=rng.standard_normal((16, 32)).astype(np.float32))  # MLP: 32 inputs
    spec = {
        "method": {"name": "sparsegpt", "blocksize": 8},
        "sparsity": 0.5,
        "latency": FAST_LATENCY,
        "calibration": {"dataset_id": "cal", "samples": 16},
    }
    result = prune(model, spec, tmp_path / "out", datasets={"cal": data}, device="cpu")
    weights = dict(OnnxModel.iter_parameters(result.artifacts["model"]))
    for layer in result.report["sparsity"]["layers"]:
        zeros = int((weights[layer["name"]] == 0).sum())
        assert zeros == round(0.5 * math.prod(layer["shape"])), layer["name"]


def test_layer_statistics_of_a_real_model_equal_per_sample_sums(tmp_path: Path) -> None:
    net = make_mlp()
    model = open_model(export_onnx(net, tmp_path / "mlp.onnx"))
    x = np.random.default_rng(1).standard_normal((40, 32)).astype(np.float32)
    data = CalibrationData("cal", {"x": x}, None, samples=40, batch=16)
    inputs = layer_inputs(model, ["x"])
    second = [t.name for t in model.prunable()][1]  # fed by ReLU(Linear(x)): a captured input
    capture = inputs.open([second])
    captured = [capture(feeds)[second] for feeds, _ in data.batches()]
    hessian = hessian_of(inputs.geometry[second], captured)
    norms = column_sq_norms(inputs, [second], data)[second]
    with torch.no_grad():
        hidden = [net[1](net[0](torch.from_numpy(row[None]))).double() for row in x]
    expected = sum((h.T @ h for h in hidden), torch.zeros(64, 64, dtype=torch.float64))
    assert torch.allclose(hessian.double(), 2.0 * expected / 40, rtol=1e-4, atol=1e-5)
    assert torch.allclose(norms.double(), torch.diag(expected), rtol=1e-4, atol=1e-5)
