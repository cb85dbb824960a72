"""Channel pruning of ONNX graphs: what belongs together is cut together, the result is a
smaller valid model of the same signature, and what cannot be cut safely is left alone with
the reason."""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from pruning.structured.onnx_channels import prune_onnx_channels
from tests.engine.factories import run_onnx
from tests.engine.structured_factories import (
    GroupedConvNet,
    InputResidualNet,
    ResidualConcatNet,
    export,
    images,
    make_net,
    matmul_mlp,
    silence_channels,
)


def _weights(proto: onnx.ModelProto) -> list[str]:
    return [i.name for i in proto.graph.initializer if len(i.dims) >= 2]


def _prune(path: Path, sparsity: float, importance: str = "l1", out: Path | None = None):
    proto = onnx.load(str(path))
    result = prune_onnx_channels(proto, _weights(proto), sparsity, importance)
    target = out or path.with_name("pruned.onnx")
    onnx.save(result.proto, str(target))
    return result, target


def _group(result, layer: str) -> dict:
    return next(g.to_json() for g in result.groups if layer in g.layers)


def test_residual_concat_and_depthwise_net_shrinks_and_keeps_its_signature(tmp_path: Path) -> None:
    dense = export(make_net(ResidualConcatNet), tmp_path / "net.onnx")
    result, pruned = _prune(dense, 0.5)

    assert result.parameters_after < result.parameters_before / 2
    assert pruned.stat().st_size < dense.stat().st_size / 2
    x = images(5)
    assert run_onnx(pruned, x).shape == run_onnx(dense, x).shape == (5, 10)
    before, after = onnx.load(str(dense)).graph, onnx.load(str(pruned)).graph
    assert [(i.name, i.type) for i in after.input] == [(i.name, i.type) for i in before.input]
    assert [(o.name, o.type) for o in after.output] == [(o.name, o.type) for o in before.output]


def test_residual_addition_ties_both_branches_into_one_group(tmp_path: Path) -> None:
    result, _ = _prune(export(make_net(ResidualConcatNet), tmp_path / "net.onnx"), 0.5)
    tied = _group(result, "stem.0.weight")
    assert set(tied["layers"]) == {"stem.0.weight", "block.3.weight"}
    assert (tied["channels"], tied["kept"], tied["reason"]) == (16, 8, None)


def test_removing_silent_channels_leaves_the_outputs_unchanged(tmp_path: Path) -> None:
    """Channels that are exactly zero through conv, BN, residual, depthwise and concat have the
    lowest norm; cutting them must be exact, which checks every consumer was cut in step."""
    net = silence_channels(make_net(ResidualConcatNet), count=8)
    dense = export(net, tmp_path / "net.onnx")
    result, pruned = _prune(dense, 0.25)

    assert all(g.kept < g.channels for g in result.groups if g.reason is None)
    x = images(4)
    np.testing.assert_allclose(run_onnx(pruned, x), run_onnx(dense, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("importance", ["l1", "l2"])
def test_zero_sparsity_changes_nothing(tmp_path: Path, importance: str) -> None:
    dense = export(make_net(ResidualConcatNet), tmp_path / "net.onnx")
    result, pruned = _prune(dense, 0.0, importance)
    assert result.parameters_after == result.parameters_before
    x = images(2)
    np.testing.assert_array_equal(run_onnx(pruned, x), run_onnx(dense, x))


def test_the_classifier_stays_because_its_channels_are_the_model_output(tmp_path: Path) -> None:
    result, _ = _prune(export(make_net(ResidualConcatNet), tmp_path / "net.onnx"), 0.5)
    head = _group(result, "head.5.weight")
    assert head["kept"] == head["channels"] == 10
    assert "model output 'logits'" in head["reason"]


def test_grouped_convolution_is_left_alone_with_the_reason(tmp_path: Path) -> None:
    result, pruned = _prune(export(make_net(GroupedConvNet), tmp_path / "net.onnx"), 0.5)
    conv = _group(result, "conv.weight")
    assert not conv["pruned"] and "grouped Conv" in conv["reason"]
    assert "grouped Conv" in _group(result, "grouped.weight")["reason"]
    assert _group(result, "fc.weight")["reason"]  # the classifier: the model output
    assert run_onnx(pruned, images(3)).shape == (3, 10)


def test_residual_onto_the_model_input_is_left_alone_with_the_reason(tmp_path: Path) -> None:
    result, _ = _prune(export(make_net(InputResidualNet), tmp_path / "net.onnx"), 0.5)
    conv = _group(result, "conv.weight")
    assert not conv["pruned"] and "combines the channels with 'x'" in conv["reason"]


def test_matmul_mlp_cuts_the_weight_its_bias_and_the_next_layer(tmp_path: Path) -> None:
    dense = matmul_mlp(tmp_path / "mlp.onnx")
    _, pruned = _prune(dense, 0.5)
    shapes = {i.name: list(i.dims) for i in onnx.load(str(pruned)).graph.initializer}
    assert shapes["w1"] == [12, 10] and shapes["b1"] == [10] and shapes["w2"] == [10, 5]
    x = np.random.default_rng(0).standard_normal((3, 12)).astype(np.float32)
    assert run_onnx(pruned, x).shape == (3, 5)


def test_a_group_with_an_unselected_layer_is_left_alone(tmp_path: Path) -> None:
    proto = onnx.load(str(export(make_net(ResidualConcatNet), tmp_path / "net.onnx")))
    selected = [n for n in _weights(proto) if n != "block.3.weight"]
    result = prune_onnx_channels(proto, selected, 0.5, "l1")
    tied = _group(result, "stem.0.weight")
    assert not tied["pruned"] and "'block.3.weight' is not selected" in tied["reason"]


def test_channel_scores_fold_in_the_batchnorm_scale(tmp_path: Path) -> None:
    """A filter of large weights whose BatchNorm scale nearly silences it goes first."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=1),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 10),
    ).eval()
    with torch.no_grad():
        net[0].weight.fill_(0.1)
        net[0].weight[0] = 10.0  # the largest filter by far...
        net[1].weight.fill_(1.0)
        net[1].weight[0] = 1e-4  # ...scaled to almost nothing by its BatchNorm
    proto = onnx.load(str(export(net, tmp_path / "bn.onnx")))
    result = prune_onnx_channels(proto, ["0.weight"], 0.25, "l1")
    pruned = {i.name: onnx.numpy_helper.to_array(i) for i in result.proto.graph.initializer}
    assert pruned["0.weight"].shape[0] == 3
    assert not np.isclose(pruned["0.weight"], 10.0).any()
