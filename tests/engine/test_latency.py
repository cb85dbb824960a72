"""The latency benchmark times until its intervals are tight or its budget is spent, and says
which; a speedup is a gain only when its interval excludes 1.0. No assertion here depends on
how fast the machine is: a budget far below one run, or far above what convergence needs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch import nn

import pruning.latency as latency_module
from pruning import prune
from pruning.inputs import resolve_inputs
from pruning.latency import (
    MedianInterval,
    interval_rank,
    measure_latency,
    median_interval,
    verdict,
)
from pruning.models import ModelAdapter, open_model
from pruning.models.base import Array, Runner
from pruning.spec import LatencySpec
from tests.engine.factories import export_onnx, fast_spec, make_mlp

UNREACHABLE = 0.001  # the tightest tolerance the spec allows: timings never agree this well


def make_wide_mlp() -> nn.Module:
    """Four 512-wide layers: milliseconds per call at batch 64, far above a 20 ms budget's
    share of a few iterations."""
    layers = [m for _ in range(4) for m in (nn.Linear(512, 512), nn.ReLU())]
    return nn.Sequential(nn.Linear(32, 512), *layers, nn.Linear(512, 10)).eval()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(make_mlp(), tmp_path_factory.mktemp("tiny") / "mlp.onnx")


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(make_wide_mlp(), tmp_path_factory.mktemp("wide") / "wide.onnx")


def timed(path: Path, **latency: Any) -> dict[str, Any]:
    """Dense and 'pruned' are two sessions of the same file: the stopping rules are what is
    under test here, not the speedup."""
    model = open_model(path)
    plan = resolve_inputs(model.signature.inputs, None, model.exact_shapes)
    with two_runners(type(model), path, plan.names) as (dense, pruned):
        return measure_latency(dense, pruned, plan, LatencySpec(**latency), type(model).runtime)


@contextmanager
def two_runners(kind: type[ModelAdapter], path: Path, names: list[str]) -> Iterator[list[Runner]]:
    pair = [kind.open_runner(path, 1, names) for _ in range(2)]
    try:
        yield pair
    finally:
        for runner in pair:
            runner.close()


def test_a_slow_model_stops_when_its_budget_is_spent(wide: Path) -> None:
    latency = timed(
        wide,
        batch_sizes=(64,),
        budget_s=0.5,
        iterations=1,
        max_iterations=100_000,
        tolerance=UNREACHABLE,
        warmup=5,
    )
    (result,) = latency["results"]
    assert result["stopped"] == "budget"
    assert 1 <= result["iterations"] < 100_000
    assert 1 <= result["warmup"] <= 5


def test_a_batch_size_whose_minimum_cannot_fit_the_budget_is_not_measured(wide: Path) -> None:
    latency = timed(wide, batch_sizes=(64,), budget_s=0.0001, iterations=2, warmup=1)
    assert latency["results"] == []
    (skipped,) = latency["skipped"]
    assert skipped["batch_size"] == 64 and skipped["reason"].startswith("not measured")
    assert "from its warm-up" in skipped["reason"] and "latency.budget_s" in skipped["reason"]
    assert skipped["predicted_iteration_s"] > skipped["budget_left_s"]


class ScriptedRunner:
    """Each call 'takes' the next of its durations on a clock the test owns: the stopping rule
    is under test, not the noise of the machine running the tests (a real model's 0.03 ms
    calls did not converge in ten minutes on a loaded CI machine)."""

    def __init__(self, clock: list[float], durations_ms: list[float]) -> None:
        self.clock, self.durations = clock, itertools.cycle(durations_ms)

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        self.clock[0] += next(self.durations) / 1000.0
        return [np.zeros(1, np.float32)]

    def close(self) -> None:
        pass


def scripted_latency(
    monkeypatch: pytest.MonkeyPatch, tiny: Path, dense_ms: list[float], pruned_ms: list[float]
) -> dict[str, Any]:
    now = [0.0]
    monkeypatch.setattr(latency_module, "clock", lambda: now[0])
    plan = resolve_inputs(open_model(tiny).signature.inputs, None, exact_shapes=True)
    spec = LatencySpec(
        batch_sizes=(1,), budget_s=600, iterations=3, max_iterations=100_000, tolerance=0.1
    )
    dense, pruned = ScriptedRunner(now, dense_ms), ScriptedRunner(now, pruned_ms)
    return measure_latency(dense, pruned, plan, spec, "test")


def test_identical_timings_converge_as_soon_as_an_interval_exists(
    monkeypatch: pytest.MonkeyPatch, tiny: Path
) -> None:
    (result,) = scripted_latency(monkeypatch, tiny, [2.0], [1.0])["results"]
    assert (result["stopped"], result["iterations"]) == ("converged", 6)  # an interval needs six
    assert result["speedup_ci95"] == [2.0, 2.0] and result["verdict"] == "faster"


def test_noisy_timings_stop_once_all_three_intervals_are_within_tolerance(
    monkeypatch: pytest.MonkeyPatch, tiny: Path
) -> None:
    dense = [2.0, 2.6, 1.5, 9.0, 2.2, 1.7, 2.9]  # outliers and spread, deterministic
    pruned = [1.0, 1.4, 0.7, 1.2, 5.0]
    (result,) = scripted_latency(monkeypatch, tiny, dense, pruned)["results"]
    assert result["stopped"] == "converged"
    assert 6 < result["iterations"] < 100_000
    for key in ("dense_ms", "pruned_ms"):
        low, high = result[key]["ci95"]
        assert low <= result[key]["p50"] <= high
        assert (high - low) / 2 <= 0.1 * result[key]["p50"] + 1e-4  # rounding to 4 digits
    low, high = result["speedup_ci95"]
    assert low <= result["speedup"] <= high and (high - low) / 2 <= 0.1 * result["speedup"] + 1e-3
    assert result["verdict"] == "faster"


def test_a_larger_batch_predicted_past_the_budget_is_skipped_without_running(
    monkeypatch: pytest.MonkeyPatch, tiny: Path
) -> None:
    """Batch 1 takes 10 ms an iteration, so batch 32 is predicted at 320 ms: warm-up and
    the minimum of three need 1.28 s, past the 1 s budget; it never runs."""
    now = [0.0]
    monkeypatch.setattr(latency_module, "clock", lambda: now[0])
    plan = resolve_inputs(open_model(tiny).signature.inputs, None, exact_shapes=True)
    spec = LatencySpec(batch_sizes=(1, 32), budget_s=1.0, iterations=3, tolerance=0.1)
    dense, pruned = ScriptedRunner(now, [5.0]), ScriptedRunner(now, [5.0])
    latency = measure_latency(dense, pruned, plan, spec, "test")
    assert [r["batch_size"] for r in latency["results"]] == [1]
    (skipped,) = latency["skipped"]
    assert skipped["batch_size"] == 32 and skipped["predicted_iteration_s"] == 0.32
    assert "from batch size 1's iterations" in skipped["reason"]
    assert latency["spent_s"] <= spec.budget_s


def test_the_fidelity_time_per_sample_predicts_the_first_batch_size(
    monkeypatch: pytest.MonkeyPatch, tiny: Path
) -> None:
    """0.6 s a sample through both models: warm-up and one iteration at batch 1 need 1.2 s,
    past the 1 s budget, so neither model runs."""
    now = [0.0]
    monkeypatch.setattr(latency_module, "clock", lambda: now[0])
    plan = resolve_inputs(open_model(tiny).signature.inputs, None, exact_shapes=True)
    spec = LatencySpec(batch_sizes=(1,), budget_s=1.0, iterations=1, warmup=1)
    dense, pruned = ScriptedRunner(now, [5.0]), ScriptedRunner(now, [5.0])
    latency = measure_latency(dense, pruned, plan, spec, "test", sample_s=0.6)
    assert latency["results"] == [] and now[0] == 0.0
    (skipped,) = latency["skipped"]
    assert "fidelity runs' time per sample" in skipped["reason"]


def test_time_spent_on_fidelity_comes_out_of_the_budget(
    monkeypatch: pytest.MonkeyPatch, tiny: Path
) -> None:
    now = [0.0]
    monkeypatch.setattr(latency_module, "clock", lambda: now[0])
    plan = resolve_inputs(open_model(tiny).signature.inputs, None, exact_shapes=True)
    spec = LatencySpec(batch_sizes=(1,), budget_s=1.0, iterations=3, tolerance=UNREACHABLE)
    dense, pruned = ScriptedRunner(now, [5.0, 6.0]), ScriptedRunner(now, [5.0, 7.0])
    latency = measure_latency(dense, pruned, plan, spec, "test", spent_before_s=0.75)
    assert latency["fidelity_s"] == 0.75
    assert latency["spent_s"] <= 0.25 and latency["results"][0]["stopped"] == "budget"


def test_a_real_model_reports_intervals_around_its_medians(tiny: Path) -> None:
    latency = timed(tiny, batch_sizes=(1,), budget_s=0.5, iterations=6, tolerance=0.5)
    (result,) = latency["results"]
    assert result["stopped"] in {"converged", "budget"}
    for key in ("dense_ms", "pruned_ms"):
        low, high = result[key]["ci95"]
        assert 0 < low <= result[key]["p50"] <= high


def test_the_minimum_is_taken_even_with_no_budget(tiny: Path) -> None:
    latency = timed(tiny, batch_sizes=(1, 2), budget_s=0, iterations=7, tolerance=UNREACHABLE)
    assert [(r["iterations"], r["stopped"]) for r in latency["results"]] == [(7, "budget")] * 2
    assert [r["warmup"] for r in latency["results"]] == [1, 1]  # at least one, even so


def test_max_iterations_caps_a_batch_size_that_never_converges(tiny: Path) -> None:
    latency = timed(
        tiny, batch_sizes=(1,), budget_s=600, iterations=1, max_iterations=9, tolerance=UNREACHABLE
    )
    assert [(r["iterations"], r["stopped"]) for r in latency["results"]] == [(9, "max_iterations")]


def test_an_old_spec_whose_iterations_exceed_the_maximum_keeps_its_iterations(
    tiny: Path,
) -> None:
    latency = timed(tiny, batch_sizes=(1,), iterations=20, max_iterations=5, tolerance=UNREACHABLE)
    assert latency["results"][0]["iterations"] == 20
    assert latency["max_iterations"] == 20


def test_too_few_iterations_are_not_judged_and_the_report_says_why(tiny: Path) -> None:
    latency = timed(tiny, batch_sizes=(1,), budget_s=0, iterations=3, tolerance=UNREACHABLE)
    (result,) = latency["results"]
    assert result["speedup_ci95"] is None and result["dense_ms"]["ci95"] is None
    assert result["verdict"] == "too few iterations"
    assert latency["note"] is None  # no "no speedup" claim either
    assert "too few for a 95% interval" in latency["warnings"][0]


def test_the_report_says_how_the_budget_was_split_and_spent(tmp_path: Path) -> None:
    path = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    spec = fast_spec(latency={"batch_sizes": [1, 4], "budget_s": 0.5, "iterations": 3})
    latency = prune(path, spec, tmp_path / "out").report["latency"]
    assert latency["budget_s"] == 0.5 and latency["spent_s"] > 0
    assert "split evenly across the batch sizes" in latency["budget_split"]
    assert {r["stopped"] for r in latency["results"]} <= {"converged", "budget", "max_iterations"}
    assert [r["batch_size"] for r in latency["results"]] == [1, 4]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Speedup [95% CI]" in html and "Iterations, stopped by" in html


def binomial_below(n: int, k: int) -> float:
    """P(B < k) for B ~ Binomial(n, 1/2), exactly."""
    return sum(math.comb(n, i) for i in range(k)) / 2**n


@pytest.mark.parametrize("n", [*range(1, 120), 250, 999, 1000])
def test_interval_rank_is_the_widest_rank_with_95_percent_coverage(n: int) -> None:
    k = interval_rank(n)
    if k is None:
        assert 2 * binomial_below(n, 1) > 0.05  # even [min, max] covers less than 95%
        return
    assert 1 - 2 * binomial_below(n, k) >= 0.95
    assert 1 - 2 * binomial_below(n, k + 1) < 0.95


def test_ranks_past_the_exact_range_stay_near_the_exact_ones() -> None:
    exact = interval_rank(1000)
    assert exact is not None
    approximated = interval_rank(1001)
    assert approximated is not None and abs(approximated - exact) <= 1


def test_median_interval_uses_order_statistics() -> None:
    interval = median_interval([float(x) for x in reversed(range(1, 11))])  # n = 10: k = 2
    assert (interval.median, interval.low, interval.high) == (5.5, 2.0, 9.0)
    assert median_interval([1.0] * 5).low is None  # five values give no 95% interval


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        (MedianInterval(1.01, 0.98, 1.04), "within noise"),
        (MedianInterval(1.01, 1.002, 1.02), "faster"),
        (MedianInterval(0.9, 0.85, 0.95), "slower"),
        (MedianInterval(1.5, None, None), "too few iterations"),
    ],
)
def test_a_speedup_is_a_gain_only_when_its_interval_excludes_one(
    interval: MedianInterval, expected: str
) -> None:
    assert verdict(interval) == expected
