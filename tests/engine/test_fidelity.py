"""The report's fidelity: measured on inputs that can show what pruning changed, on real
data when the job has some, and "not measured" with a reason when nothing can show it."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from pruning import prune
from pruning.fidelity import CHUNK, SAMPLES, measure_fidelity
from pruning.inputs import resolve_inputs
from pruning.models import open_model
from tests.engine.factories import FAST_LATENCY, load_torchscript

VOCAB, WIDTH, TOKENS = 100, 32, 12


class MaskedEncoder(nn.Module):
    """Token ids and an attention mask, as a sentence encoder takes them: embeddings, a
    Linear layer, the mask multiplied in, a masked mean, a Linear head. All-zero inputs are
    all padding: the output is then the head's bias, whatever the pruned weights are."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.hidden = nn.Linear(WIDTH, WIDTH)
        self.head = nn.Linear(WIDTH, 8)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        hidden = torch.relu(self.hidden(self.embed(input_ids))) * mask
        return self.head(hidden.sum(1) / mask.sum(1).clamp(min=1.0))


class Saturated(nn.Module):
    """A Linear layer whose output is clamped to 0 for every input: nothing can differ."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.fc(x), min=1e6, max=1e6)


def _tokens(samples: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(0, VOCAB, (samples, TOKENS)).astype(np.int64),
        "attention_mask": np.ones((samples, TOKENS), np.int64),
    }


def _examples() -> tuple[torch.Tensor, torch.Tensor]:
    zeros = torch.zeros(2, TOKENS, dtype=torch.int64)
    return zeros, zeros


def export_encoder_onnx(path: Path) -> Path:
    names = ["input_ids", "attention_mask"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            MaskedEncoder().eval(),
            _examples(),
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={n: {0: "batch"} for n in [*names, "embedding"]},
        )
    return path


def export_encoder_torchscript(path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(MaskedEncoder().eval(), _examples()), str(path))
    return path


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _outputs(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    if path.suffix == ".onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, feeds)[0])
    module = load_torchscript(path)
    with torch.no_grad():
        return module(*(torch.from_numpy(feeds[n]) for n in feeds)).numpy()


def _magnitude(**fields: Any) -> dict[str, Any]:
    return {"sparsity": 0.5, "latency": dict(FAST_LATENCY, batch_sizes=[1]), **fields}


@pytest.mark.parametrize("export", [export_encoder_onnx, export_encoder_torchscript])
def test_fidelity_of_a_token_model_matches_the_cosine_on_real_token_ids(
    tmp_path: Path, export: Any
) -> None:
    suffix = ".onnx" if export is export_encoder_onnx else ".pt"
    model = export(tmp_path / f"encoder{suffix}")
    result = prune(model, _magnitude(), tmp_path / "out")
    fidelity = result.report["quality"]["fidelity"]
    assert fidelity["measured"] is True and fidelity["source"] == "synthetic inputs"
    feeds = _tokens(64, seed=7)
    real = _cosine(_outputs(model, feeds), _outputs(result.artifacts["model"], feeds))
    assert real < 0.99  # pruning half the weights moved the outputs
    assert fidelity["output_cosine"] == pytest.approx(real, abs=0.05)
    fill = fidelity["inputs"]["fill"]
    assert "[0, 100)" in fill["input_ids"] and fill["attention_mask"].startswith("ones")


def test_a_model_whose_output_is_the_same_for_every_input_is_not_measured(
    tmp_path: Path,
) -> None:
    path = tmp_path / "saturated.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Saturated().eval(),
            (torch.randn(2, 16),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
    fidelity = prune(path, _magnitude(), tmp_path / "out").report["quality"]["fidelity"]
    assert fidelity["measured"] is False
    assert "same output" in fidelity["reason"]
    assert fidelity["output_cosine"] is None and fidelity["max_abs_diff"] is None


def test_a_job_with_calibration_data_reports_fidelity_on_it(tmp_path: Path) -> None:
    model = export_encoder_onnx(tmp_path / "encoder.onnx")
    data = tmp_path / "cal.npz"
    np.savez(data, **_tokens(24, seed=3))
    spec = _magnitude(method={"name": "wanda"}, calibration={"dataset_id": "ds_cal", "samples": 16})
    quality = prune(model, spec, tmp_path / "out", datasets={"ds_cal": data}).report["quality"]
    fidelity = quality["fidelity"]
    assert fidelity["source"] == "calibration data" and fidelity["measured"] is True
    assert fidelity["samples"] == 16 and fidelity["dataset_id"] == "ds_cal"
    assert 0.0 < fidelity["output_cosine"] < 1.0
    assert quality["synthetic_fidelity"]["source"] == "synthetic inputs"


def test_a_one_shot_calibrated_job_measures_calibration_fidelity_once_for_both_places(
    tmp_path: Path,
) -> None:
    """The headline and the calibration block come from one run of both models on the
    saved artifact: the same cosine, and the block's own fields (top-1, in-sample)."""
    model = export_encoder_onnx(tmp_path / "encoder.onnx")
    data = tmp_path / "cal.npz"
    np.savez(data, **_tokens(24, seed=3))
    spec = _magnitude(method={"name": "wanda"}, calibration={"dataset_id": "ds_cal", "samples": 16})
    report = prune(model, spec, tmp_path / "out", datasets={"ds_cal": data}).report
    headline, block = report["quality"]["fidelity"], report["calibration"]["fidelity"]
    assert headline["output_cosine"] == pytest.approx(block["output_cosine"], abs=1e-12)
    assert block["samples"] == 16 and block["inputs"] == "calibration samples (in-sample)"
    assert headline["in_sample"] is True and headline["time_s"] >= 0


class SlowRunner:
    """A real runner that takes ``delay`` seconds more per call: a model slower than the
    budget, on any machine."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def run(self, feeds: Any) -> Any:
        time.sleep(self.delay)
        return self.inner.run(feeds)

    def close(self) -> None:
        self.inner.close()


def test_synthetic_fidelity_stops_within_its_share_of_the_budget(tmp_path: Path) -> None:
    path = export_encoder_onnx(tmp_path / "encoder.onnx")
    model = open_model(path)
    plan = resolve_inputs(model.signature.inputs, None, True, model.input_ranges())
    runners = [SlowRunner(type(model).open_runner(path, 1, plan.names), 0.05) for _ in range(2)]
    cut = measure_fidelity(runners[0], runners[1], plan, ["y"], budget_s=0.2)
    whole = measure_fidelity(runners[0], runners[1], plan, ["y"], budget_s=None)
    assert cut["measured"] and cut["samples"] == CHUNK < whole["samples"] == SAMPLES
    assert "of 16 samples" in cut["inputs"]["budget"] and "budget" not in whole["inputs"]


class ComputedTable(nn.Module):
    """Token ids index a table computed in the graph, whose rows the graph does not state."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Parameter(torch.randn(50, 16))
        self.fc = nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc((self.table * 2.0)[ids].mean(1))


def test_ids_into_a_table_of_unknown_size_are_not_measured_on_synthetic_inputs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "computed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ComputedTable().eval(),
            (torch.zeros(2, 5, dtype=torch.int64),),
            str(path),
            dynamo=False,
            input_names=["ids"],
            output_names=["y"],
            dynamic_axes={"ids": {0: "batch"}, "y": {0: "batch"}},
            do_constant_folding=False,  # keep the table computed, as a graph may
        )
    fidelity = prune(path, _magnitude(), tmp_path / "out").report["quality"]["fidelity"]
    assert fidelity["measured"] is False and fidelity["output_cosine"] is None
    assert "'ids'" in fidelity["reason"] and "evaluation or calibration data" in fidelity["reason"]


def test_a_job_with_an_evaluation_reports_fidelity_on_the_evaluation_data(
    tmp_path: Path,
) -> None:
    model = export_encoder_onnx(tmp_path / "encoder.onnx")
    data = tmp_path / "eval.npz"
    np.savez(data, **_tokens(40, seed=5), labels=np.random.default_rng(5).integers(0, 8, 40))
    spec = _magnitude(evaluation={"dataset_id": "ds_eval", "metric": "accuracy"})
    quality = prune(model, spec, tmp_path / "out", datasets={"ds_eval": data}).report["quality"]
    fidelity = quality["fidelity"]
    assert fidelity["source"] == "evaluation data" and fidelity["samples"] == 40
    assert fidelity["output_cosine"] == quality["metric"]["fidelity"]["output_cosine"]
    assert quality["synthetic_fidelity"]["source"] == "synthetic inputs"
