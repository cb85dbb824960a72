"""A realistic report (API.md's Report shape) and weights, built here with numpy."""

import math
from typing import Any

import numpy as np

EVIL_NAME = '<script>alert("pwned")</script>.weight'

LAYER_SHAPES = {
    "conv1.weight": (64, 3, 7, 7),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer3.0.conv1.weight": (256, 128, 3, 3),
    "model.backbone.encoder.stage4.block0.attention.query_projection.weight": (256, 256),
    EVIL_NAME: (96, 256),
    "fc.weight": (10, 256),
}


def make_weights(sparsity: float = 0.8, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dense weights, and the same with the smallest `sparsity` of all magnitudes zeroed."""
    rng = np.random.default_rng(seed)
    before = {
        name: (rng.standard_normal(shape) * math.sqrt(2 / np.prod(shape[1:]))).astype(np.float32)
        for name, shape in LAYER_SHAPES.items()
    }
    threshold = np.quantile(np.concatenate([np.abs(w).ravel() for w in before.values()]), sparsity)
    after = {
        name: np.where(np.abs(w) < threshold, 0, w).astype(np.float32) for name, w in before.items()
    }
    return before, after


def make_report(after: dict[str, Any], target: float = 0.8) -> dict[str, Any]:
    layers = [
        {
            "name": name,
            "shape": list(w.shape),
            "parameters": int(w.size),
            "nonzeros": int(np.count_nonzero(w)),
            "sparsity": 1 - np.count_nonzero(w) / w.size,
        }
        for name, w in after.items()
    ]
    params = sum(layer["parameters"] for layer in layers)
    nonzeros = sum(layer["nonzeros"] for layer in layers)
    dense = 4 * params
    return {
        "sparsity": {"target": target, "achieved": 1 - nonzeros / params, "layers": layers},
        "storage": _storage(dense, params, nonzeros),
        "latency": _latency(),
        "quality": {
            "fidelity": {"output_cosine": 0.99712, "max_abs_diff": 0.1834, "top1_agreement": 0.981},
            "metric": {
                "name": "accuracy",
                "dataset_id": "ds_<b>eval</b>",
                "dense": 0.912,
                "pruned": 0.904,
            },
        },
        "timings": {"load_s": 0.84, "prune_s": 2.31, "retrain_s": 41.7, "benchmark_s": 6.02},
        "training": {"curve": _curve(target)},
    }


def _storage(dense: int, params: int, nonzeros: int) -> dict[str, Any]:
    p = nonzeros / params
    floor_bits = params * (-p * math.log2(p) - (1 - p) * math.log2(1 - p)) + 32 * nonzeros
    formats = {
        "csr": nonzeros * 6 + 2000,
        "bitmask": params // 8 + nonzeros * 4,
        "sparse_npz": params // 8 + nonzeros * 4 + 5400,
        "sparse_npz_zip": int((params // 8 + nonzeros * 4) * 0.93),
        "sparse_npz_zstd": int((params // 8 + nonzeros * 4) * 0.92),
        "file": dense + 1800,
        "file_zip": int(dense * 0.38),
        "file_zstd": int(dense * 0.36),
        "onnx_sparse": nonzeros * 12 + 1900,
    }
    return {
        "dense_bytes": dense,
        "formats": formats,
        "floor": {"bits": floor_bits, "bytes": floor_bits / 8},
        "method": {
            "file": "size of the pruned model file on disk",
            "floor": "a bound, not measured",
        },
    }


def _latency() -> dict[str, Any]:
    results = []
    for batch, dense_ms, speedup, verdict in [
        (1, 1.92, 1.03, "within noise"),
        (8, 11.4, 0.97, "slower"),
        (32, 43.8, 1.08, "faster"),
    ]:
        pruned_ms = dense_ms / speedup
        results.append(
            {
                "batch_size": batch,
                "dense_ms": {"p50": dense_ms, "p95": dense_ms * 1.12, "ci95": _ci(dense_ms)},
                "pruned_ms": {"p50": pruned_ms, "p95": pruned_ms * 1.18, "ci95": _ci(pruned_ms)},
                "speedup": speedup,
                "speedup_ci95": _ci(speedup, 0.04 if verdict == "within noise" else 0.02),
                "verdict": verdict,
                "iterations": 40 * batch,
                "stopped": "converged",
            }
        )
    note = "Unstructured zeros are still multiplied by dense kernels: expect no speedup."
    return {
        "runtime": "onnxruntime 1.32.0",
        "threads": 1,
        "budget_s": 4.0,
        "spent_s": 3.7,
        "tolerance": 0.03,
        "results": results,
        "note": note,
    }


def _ci(median: float, half: float = 0.02) -> list[float]:
    return [median * (1 - half), median * (1 + half)]


def _curve(target: float) -> list[dict[str, float]]:
    points = []
    for step in range(0, 3001, 100):
        progress = min(step / 2000, 1.0)
        sparsity = target * (1 - (1 - progress) ** 3)  # Zhu & Gupta cubic schedule
        loss = 0.35 + 0.9 * math.exp(-step / 600) + 0.25 * sparsity * math.exp(-step / 2500)
        points.append({"step": step, "loss": loss, "sparsity": sparsity})
    return points
