"""The ratio search of `granularity.target`: the least pruning that meets the target, the
curve of every probe, and how close it got when the maximum ratio misses."""

import onnx
import pytest

from pruning.structured.onnx_channels import parameter_count, prune_onnx_channels
from pruning.structured.target import Target, search
from tests.engine.head_factories import onnx_encoder, tokens


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    return onnx.load(str(onnx_encoder(tmp_path_factory.mktemp("t") / "e.onnx")))


def _search(proto: onnx.ModelProto, target: Target) -> tuple[float, dict]:
    names = [t.name for t in proto.graph.initializer if len(t.dims) == 2]
    result, report = search(
        lambda r: prune_onnx_channels(proto, names, r, "l1"),
        proto,
        target,
        0.75,
        [{"tokens": tokens(2)}],
    )
    return parameter_count(result.proto) / parameter_count(proto), report


def test_a_parameter_target_is_met_with_the_least_pruning_that_does(
    encoder: onnx.ModelProto,
) -> None:
    kept, report = _search(encoder, Target("parameters", 0.7))
    assert report["met"] and kept <= 0.7
    assert report["reached"] == pytest.approx(kept, abs=1e-4)
    curve = report["curve"]
    assert len(curve) == 7 and curve == sorted(curve, key=lambda p: p["ratio"])
    missing = [p for p in curve if p["ratio"] < report["ratio"]]
    assert missing and all(p["parameters"] > 0.7 for p in missing)


def test_an_unreachable_target_says_how_close_it_got(encoder: onnx.ModelProto) -> None:
    _, report = _search(encoder, Target("flops", 0.05))
    assert not report["met"] and report["ratio"] == 0.75
    assert 0.05 < report["reached"] < 1.0 and len(report["curve"]) == 1
