"""Attention heads removed physically from ONNX graphs of both torch.onnx exporters
(TorchScript-based and dynamo), in three attention styles (HF's Shape/Gather/Concat views;
reshape with k permuted straight to k^T and a -1 merge; scaled_dot_product_attention, whose
k^T the dynamo exporter folds to 3-D and back) and with a constant shape; the cut equals the
dense model with those heads silenced; what cannot be followed is refused naming the node."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from pruning.structured.graph import OnnxGraph
from pruning.structured.heads import cut_heads, find_heads
from pruning.structured.onnx_channels import prune_onnx_channels
from pruning.structured.transformer import UnitOptions
from tests.engine.head_factories import Encoder, export_encoder, onnx_encoder, tokens


def _run(proto: onnx.ModelProto, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString())
    return np.asarray(session.run(None, {"tokens": batch})[0])


def _silenced(
    proto: onnx.ModelProto, weight: str, heads: list[int], head_dim: int
) -> onnx.ModelProto:
    """The dense model with the rows of ``heads`` in the output projection zeroed."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    init = next(i for i in copy.graph.initializer if i.name == weight)
    values = numpy_helper.to_array(init).copy()
    for h in heads:
        values[h * head_dim : (h + 1) * head_dim] = 0.0
    init.CopyFrom(numpy_helper.from_array(values, weight))
    return copy


@pytest.fixture(scope="module", params=["hf", "fixed", "sdpa"])
def encoder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    style = request.param
    return onnx_encoder(tmp_path_factory.mktemp(style) / f"{style}.onnx", style)


@pytest.fixture(scope="module", params=["hf", "fixed", "sdpa"])
def dynamo_encoder(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    style = request.param
    folder = tmp_path_factory.mktemp(f"dynamo-{style}")
    return onnx_encoder(folder / f"{style}.onnx", style, dynamo=True)


def _cut_equals_silenced(proto: onnx.ModelProto, keep: list[int]) -> None:
    pruned = onnx.ModelProto()
    pruned.CopyFrom(proto)
    graph = OnnxGraph(pruned)
    analysis = find_heads(graph)
    assert len(analysis.blocks) == 2 and not analysis.refused
    silenced = proto
    for block in analysis.blocks:
        assert (block.heads, block.head_dim) == (4, 8)
        gone = [h for h in range(block.heads) if h not in keep]
        silenced = _silenced(silenced, block.output_weight, gone, block.head_dim)
        cut_heads(graph, block, np.array(keep))
    del pruned.graph.value_info[:]
    onnx.checker.check_model(pruned, full_check=True)
    batch = tokens(5, seed=3)
    np.testing.assert_allclose(_run(pruned, batch), _run(silenced, batch), atol=1e-5)
    sizes = {i.name: list(i.dims) for i in pruned.graph.initializer}
    assert all(sizes[b.output_weight] == [8 * len(keep), 32] for b in analysis.blocks)


def test_cutting_heads_equals_silencing_them_in_every_attention_style(encoder: Path) -> None:
    _cut_equals_silenced(onnx.load(str(encoder)), [1, 3])


def test_cutting_heads_equals_silencing_them_on_the_dynamo_exporters_graph(
    dynamo_encoder: Path,
) -> None:
    proto = onnx.load(str(dynamo_encoder))
    assert not [n for n in proto.graph.node if n.op_type in ("Attention", "Constant")]
    _cut_equals_silenced(proto, [1, 3])


def test_the_dynamo_folded_key_transpose_is_followed_and_keeps_its_run_time_shapes(
    tmp_path: Path,
) -> None:
    proto = onnx.load(str(onnx_encoder(tmp_path / "sdpa.onnx", "sdpa", dynamo=True)))
    folds = [n for n in proto.graph.node if n.op_type == "Transpose" and _perm(n) == [0, 2, 1]]
    assert len(folds) == 2  # k^T per block as Reshape [-1, s, D] / Transpose / Reshape back
    _cut_equals_silenced(proto, [2])
    graph = OnnxGraph(proto)
    for block in find_heads(graph).blocks:
        cut_heads(graph, block, np.array([0, 2]))
    del proto.graph.value_info[:]  # the exporter's shapes of the uncut graph
    assert _run(proto, tokens(3)).shape == (3, 32)


def test_a_folded_key_transpose_with_a_constant_shape_is_refused_naming_the_node(
    tmp_path: Path,
) -> None:
    proto = onnx.load(str(onnx_encoder(tmp_path / "sdpa.onnx", "sdpa", dynamo=True)))
    producer = {o: n for n in proto.graph.node for o in n.output}
    fold = next(n for n in proto.graph.node if n.op_type == "Transpose" and _perm(n) == [0, 2, 1])
    unfold = next(n for n in proto.graph.node if fold.output[0] in n.input)
    # the head count written into the unfold instead of read from Shape(k)
    fixed = numpy_helper.from_array(np.array([-1, 4, 8, 8], np.int64), "fixed_unfold")
    proto.graph.initializer.append(fixed)
    unfold.input[1] = "fixed_unfold"
    analysis = find_heads(OnnxGraph(proto))
    assert len(analysis.blocks) == 1
    (reason,) = analysis.refused.values()
    assert f"Reshape node '{unfold.name}'" in reason
    assert producer[unfold.input[0]] is fold


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_packed_qkv_projection_loses_the_heads_columns_in_each_third(
    dynamo: bool, tmp_path: Path
) -> None:
    proto = onnx.load(str(onnx_encoder(tmp_path / "packed.onnx", "packed", dynamo=dynamo)))
    split = "Split" if dynamo else "Slice"
    assert [n.op_type for n in proto.graph.node].count(split) == (2 if dynamo else 6)
    _cut_equals_silenced(proto, [0, 3])
    graph = OnnxGraph(proto)
    blocks = find_heads(graph).blocks
    for block in blocks:
        cut_heads(graph, block, np.array([1]))
    sizes = {i.name: list(i.dims) for i in proto.graph.initializer}
    assert all(sizes[b.projections[0].weight] == [32, 24] for b in blocks)
    del proto.graph.value_info[:]
    assert _run(proto, tokens(3)).shape == (3, 32)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_packed_qkv_encoder_is_ranked_cut_and_refitted_like_separate_projections(
    dynamo: bool, tmp_path: Path
) -> None:
    proto = onnx.load(str(onnx_encoder(tmp_path / "packed.onnx", "packed", dynamo=dynamo)))
    names = [t.name for t in proto.graph.initializer if len(t.dims) == 2]
    result = prune_onnx_channels(proto, names, 0.5, "l1")
    units = [(u["kind"], u["units"], u["kept"]) for u in result.units]
    assert units == [("head", 4, 2)] * 2 + [("neuron", 64, 32)] * 2
    _rescale_beats_plain(proto)


def test_constant_slice_bounds_of_a_packed_projection_are_rewritten(tmp_path: Path) -> None:
    proto = onnx.load(str(onnx_encoder(tmp_path / "packed.onnx", "packed")))
    slices = [n for n in proto.graph.node if n.op_type == "Slice" and "qkv" in n.input[0]]
    for i, node in enumerate(slices):  # as an optimum-style graph writes them
        part = i % 3
        for position, value in ((1, part * 32), (2, (part + 1) * 32)):
            name = f"bound_{i}_{position}"
            proto.graph.initializer.append(numpy_helper.from_array(np.array([value]), name))
            node.input[position] = name
    _cut_equals_silenced(proto, [2])


def _perm(node: onnx.NodeProto) -> list[int]:
    return [int(p) for a in node.attribute if a.name == "perm" for p in a.ints]


def test_a_constant_reshape_shape_is_rewritten_too(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "static.onnx"
    example = torch.from_numpy(tokens(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Encoder("hf").eval(),
            (example,),
            str(path),
            dynamo=False,
            input_names=["tokens"],
            output_names=["embedding"],
        )
    proto = onnx.load(str(path))
    reshapes = [n for n in proto.graph.node if n.op_type == "Reshape"]
    constants = {n.output[0] for n in proto.graph.node if n.op_type == "Constant"}
    assert all(n.input[1] in constants for n in reshapes)  # a static batch: constant shapes
    pruned = onnx.ModelProto()
    pruned.CopyFrom(proto)
    graph = OnnxGraph(pruned)
    analysis = find_heads(graph)
    assert len(analysis.blocks) == 2
    for block in analysis.blocks:
        cut_heads(graph, block, np.array([0]))
    del pruned.graph.value_info[:]
    onnx.checker.check_model(pruned, full_check=True)
    assert _run(pruned, tokens(2)).shape == (2, 32)
    shapes = [
        OnnxGraph(pruned).constant(n.input[1]) for n in pruned.graph.node if n.op_type == "Reshape"
    ]
    assert [list(s) for s in shapes[:4]] == [[2, 8, 1, 8]] * 3 + [[2, 8, 8]]


class _ComputedHeads(torch.nn.Module):
    """Heads counted at run time from the width: ``x.shape[-1] // head_dim``."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(17, 32)
        self.qkv = torch.nn.ModuleList(torch.nn.Linear(32, 32) for _ in range(3))
        self.out = torch.nn.Linear(32, 32)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        b, s, width = x.shape
        q, k, v = (p(x).view(b, s, width // 8, 8).transpose(1, 2) for p in self.qkv)
        context = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v
        return self.out(context.transpose(1, 2).reshape(b, s, width)).mean(dim=1)


def test_a_head_count_computed_at_run_time_is_refused_naming_the_node(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = export_encoder(_ComputedHeads(), tmp_path / "computed.onnx")
    proto = onnx.load(str(path))
    analysis = find_heads(OnnxGraph(proto))
    assert not analysis.blocks
    (reason,) = analysis.refused.values()
    assert "Concat" in reason and "not a constant" in reason
    names = [t.name for t in proto.graph.initializer if len(t.dims) == 2]
    result = prune_onnx_channels(proto, names, 0.5, "l1")
    (entry,) = [u for u in result.units if u["kind"] == "head"]
    assert entry["kept"] is None and "not a constant" in entry["reason"]


def test_heads_and_neurons_go_together_and_the_signature_stays(encoder: Path) -> None:
    proto = onnx.load(str(encoder))
    names = [t.name for t in proto.graph.initializer if len(t.dims) == 2]
    result = prune_onnx_channels(proto, names, 0.5, "l1")
    heads = [u for u in result.units if u["kind"] == "head"]
    assert [(u["units"], u["kept"]) for u in heads] == [(4, 2), (4, 2)]
    neurons = [(u["layer"], u["units"], u["kept"]) for u in result.units if u["kind"] == "neuron"]
    assert neurons == [
        ("/blocks.0/intermediate/MatMul", 64, 32),
        ("/blocks.1/intermediate/MatMul", 64, 32),
    ]
    mlp = [g for g in result.groups if g.kept < g.channels]
    assert [(g.channels, g.kept) for g in mlp] == [(64, 32), (64, 32)]
    assert result.parameters_after < 0.6 * result.parameters_before
    dense = ort.InferenceSession(proto.SerializeToString())
    pruned = ort.InferenceSession(result.proto.SerializeToString())
    signature = [(v.name, v.type, v.shape) for v in (*dense.get_inputs(), *dense.get_outputs())]
    assert [
        (v.name, v.type, v.shape) for v in (*pruned.get_inputs(), *pruned.get_outputs())
    ] == signature


def test_dynamo_heads_and_neurons_go_together_and_the_signature_stays(
    dynamo_encoder: Path,
) -> None:
    proto = onnx.load(str(dynamo_encoder))
    names = [t.name for t in proto.graph.initializer if len(t.dims) == 2]
    result = prune_onnx_channels(proto, names, 0.5, "l1")
    units = [(u["kind"], u["units"], u["kept"]) for u in result.units]
    assert units == [("head", 4, 2)] * 2 + [("neuron", 64, 32)] * 2
    assert result.parameters_after < 0.6 * result.parameters_before
    dense = ort.InferenceSession(proto.SerializeToString())
    pruned = ort.InferenceSession(result.proto.SerializeToString())
    signature = [(v.name, v.type, v.shape) for v in (*dense.get_inputs(), *dense.get_outputs())]
    assert [
        (v.name, v.type, v.shape) for v in (*pruned.get_inputs(), *pruned.get_outputs())
    ] == signature


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def test_least_squares_rescale_brings_the_output_back_on_held_out_data(encoder: Path) -> None:
    _rescale_beats_plain(onnx.load(str(encoder)))


def test_least_squares_rescale_works_on_the_dynamo_exporters_graph(dynamo_encoder: Path) -> None:
    _rescale_beats_plain(onnx.load(str(dynamo_encoder)))


def _rescale_beats_plain(proto: onnx.ModelProto) -> None:
    names = [t.name for t in proto.graph.initializer if len(t.dims) == 2]
    calibration = [{"tokens": tokens(16, seed=s)} for s in range(4)]
    held_out = tokens(64, seed=99)
    dense = _run(proto, held_out)
    ranked = UnitOptions(calibration, "global", rescale=False)
    refit = UnitOptions(calibration, "global", rescale=True)
    plain = prune_onnx_channels(proto, names, 0.5, "l1", ranked)
    fitted = prune_onnx_channels(proto, names, 0.5, "l1", refit)
    assert plain.parameters_after == fitted.parameters_after
    assert _cosine(dense, _run(fitted.proto, held_out)) > _cosine(
        dense, _run(plain.proto, held_out)
    )
    fits = [u["rescale"] for u in fitted.units if "rescale" in u]
    assert fits and all(f["error_after"] < f["error_before"] for f in fits)


def test_a_fused_attention_op_is_refused_naming_the_node() -> None:
    helper = onnx.helper
    weights = numpy_helper.from_array(np.zeros((32, 96), np.float32), "qkv_weight")
    bias = numpy_helper.from_array(np.zeros(96, np.float32), "qkv_bias")
    node = helper.make_node(
        "Attention",
        ["x", "qkv_weight", "qkv_bias"],
        ["y"],
        "fused",
        domain="com.microsoft",
        num_heads=4,
    )
    graph = helper.make_graph(
        [node],
        "fused",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, 32])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 8, 32])],
        [weights, bias],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    analysis = find_heads(OnnxGraph(helper.make_model(graph, opset_imports=opsets)))
    assert not analysis.blocks
    assert "fused Attention node 'fused'" in analysis.refused["fused"]


def test_a_classifier_softmax_is_no_attention_and_not_reported(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4), torch.nn.Softmax(-1)
    )
    path = tmp_path / "mlp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.randn(2, 8),), str(path), dynamo=False)
    proto = onnx.load(str(path))
    names = [t.name for t in proto.graph.initializer if len(t.dims) == 2]
    result = prune_onnx_channels(proto, names, 0.5, "l1")
    assert not [u for u in result.units if u["kind"] == "head"]


def test_prune_reports_the_structured_headline_and_refuses_data_options_on_torchscript(
    tmp_path: Path,
) -> None:
    from pruning import prune
    from pruning.errors import Unsupported
    from tests.engine.bert_factories import traced_bert

    encoder = onnx_encoder(tmp_path / "encoder.onnx", "sdpa")
    calibration = tmp_path / "calibration.npz"
    np.savez(calibration, tokens=tokens(32, seed=4))
    spec = {
        "sparsity": 0.5,
        "granularity": {"kind": "channel", "importance": "output_error", "rescale": True},
        "calibration": {"dataset_id": "ds_c", "samples": 32},
        "latency": {"batch_sizes": [2], "iterations": 2, "warmup": 1, "budget_s": 0.5},
    }
    report = prune(encoder, spec, tmp_path / "out", datasets={"ds_c": calibration}).report
    headline = report["structured"]
    assert headline["heads_removed"] == {
        "total": 4,
        "of": 8,
        "per_layer": {"/blocks.0/attention": 2, "/blocks.1/attention": 2},
    }
    assert headline["flops"]["ratio"] < 0.6 and headline["speedup"]["2"] is not None
    assert report["calibration"]["dataset_id"] == "ds_c"
    with pytest.raises(Unsupported) as caught:
        prune(
            traced_bert(tmp_path / "bert.pt"), spec, tmp_path / "ts", datasets={"ds_c": calibration}
        )
    assert caught.value.field == "granularity.importance"


def test_prune_removes_heads_of_a_dynamo_export_and_reports_them(tmp_path: Path) -> None:
    from pruning import prune

    encoder = onnx_encoder(tmp_path / "encoder.onnx", "sdpa", dynamo=True)
    calibration = tmp_path / "calibration.npz"
    np.savez(calibration, tokens=tokens(32, seed=4))
    spec = {
        "sparsity": 0.5,
        "granularity": {"kind": "channel", "importance": "output_error", "rescale": True},
        "calibration": {"dataset_id": "ds_c", "samples": 32},
        "latency": {"batch_sizes": [2], "iterations": 2, "warmup": 1, "budget_s": 0.5},
    }
    report = prune(encoder, spec, tmp_path / "out", datasets={"ds_c": calibration}).report
    headline = report["structured"]
    assert (headline["heads_removed"]["total"], headline["heads_removed"]["of"]) == (4, 8)
    assert headline["neurons_removed"]["total"] == 64
    assert headline["flops"]["ratio"] == 0.5 and headline["output_cosine"] > 0.95
