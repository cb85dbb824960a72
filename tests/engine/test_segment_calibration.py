"""Segment-wise calibration of ONNX graphs (issue 14): the inputs each layer sees, and the
weights SparseGPT leaves, equal those of the whole-model capture run once per layer, on
graphs with branches (a residual stream, q/k/v reading one tensor, a mask read late) and
with a layer used twice."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pruning.calibration.capture import layer_inputs, layer_sequence
from pruning.calibration.dataset import CalibrationData
from pruning.calibration.onnx_segments import OnnxSegments
from pruning.calibration.stats import input_hessian
from pruning.methods.calibrated import CalibratedJob
from pruning.methods.sparsegpt import SparseGPTMethod, sparsegpt_layer
from pruning.models import open_model
from pruning.models.onnx_model import OnnxModel

WIDTH, SEQ, SAMPLES = 16, 6, 40


class AttentionBlock(nn.Module):
    """q, k, v read one tensor; the residual stream and the mask cross every cut."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(WIDTH, WIDTH) for _ in range(4))
        self.up, self.down = nn.Linear(WIDTH, 2 * WIDTH), nn.Linear(2 * WIDTH, WIDTH)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.q(x) @ self.k(x).transpose(1, 2) + (1.0 - mask[:, None, :]) * -1e4
        x = x + self.o(scores.softmax(-1) @ self.v(x))
        out: torch.Tensor = x + self.down(torch.relu(self.up(x))) * mask[:, :, None]
        return out


class Reused(nn.Module):
    """One Linear applied twice: its weight is read by two MatMul nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.shared, self.head = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, 4)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.shared(torch.relu(self.shared(x))) * mask[:, :, None])
        return out


def export(net: nn.Module, path: Path) -> OnnxModel:
    torch.manual_seed(0)
    for p in net.parameters():
        nn.init.normal_(p, std=0.5)
    x, mask = torch.randn(2, SEQ, WIDTH), torch.ones(2, SEQ)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(),
            (x, mask),
            str(path),
            dynamo=False,
            input_names=["x", "mask"],
            output_names=["y"],
            dynamic_axes={"x": {0: "b"}, "mask": {0: "b"}, "y": {0: "b"}},
        )
    model = open_model(path)
    assert isinstance(model, OnnxModel)
    return model


def calibration() -> CalibrationData:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(SAMPLES, SEQ, WIDTH)).astype(np.float32)
    mask = (rng.random((SAMPLES, SEQ)) > 0.3).astype(np.float32)
    return CalibrationData("ds", {"x": x, "mask": mask}, None, SAMPLES, batch=16)


def graph_order(model: OnnxModel) -> list[str]:
    names = {t.name for t in model.prunable()}
    seen: list[str] = []
    for node in model.proto.graph.node:
        seen += [n for n in node.input if n in names and n not in seen]
    return seen


def test_each_layer_sees_the_inputs_of_a_whole_model_run(tmp_path: Path) -> None:
    for net in (AttentionBlock(), Reused()):
        model = export(net, tmp_path / f"{type(net).__name__}.onnx")
        inputs, data = layer_inputs(model, ["x", "mask"]), calibration()
        names = graph_order(model)
        for group, captured in layer_sequence(inputs, names, data):
            for name in group:
                naive = inputs.open([name])
                expected = [naive(feeds)[name] for feeds, _ in data.batches()]
                for got, want in zip(captured, expected, strict=True):
                    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_layers_reading_one_tensor_are_captured_once(tmp_path: Path) -> None:
    model = export(AttentionBlock(), tmp_path / "block.onnx")
    segments = OnnxSegments(layer_inputs(model, ["x", "mask"]), graph_order(model))  # type: ignore[arg-type]
    sizes = sorted(len(cut.names) for cut in segments.cuts)
    assert sizes == [1, 1, 1, 3]  # q, k, v together; o, up and down alone


def test_sparsegpt_leaves_the_weights_of_the_sequential_whole_model_scheme(
    tmp_path: Path,
) -> None:
    for net in (AttentionBlock(), Reused()):
        path = tmp_path / f"{type(net).__name__}.onnx"
        segmented, naive = export(net, path), open_model(path)
        assert isinstance(naive, OnnxModel)
        data = calibration()
        tensors = {t.name: t for t in segmented.prunable()}
        job = CalibratedJob(
            model=segmented,
            tensors=[tensors[n] for n in graph_order(segmented)],
            sparsity=0.5,
            scope="layerwise",
            overrides={},
            data=data,
            input_names=["x", "mask"],
            progress=lambda fraction, layer=None: None,
        )
        SparseGPTMethod().prune(job)
        reference = sequential_whole_model(naive, data)
        for t in segmented.prunable():
            np.testing.assert_allclose(t.values, reference[t.name], rtol=1e-4, atol=1e-5)
            assert np.count_nonzero(t.values == 0) == t.values.size // 2


def sequential_whole_model(model: OnnxModel, data: CalibrationData) -> dict[str, np.ndarray]:
    """The scheme before segments: for each layer in order, the whole model from the
    current weights gives its inputs, then the layer is pruned."""
    inputs = layer_inputs(model, ["x", "mask"])
    tensors = {t.name: t for t in model.prunable()}
    for name in graph_order(model):
        matrix = inputs.geometry[name].matrix(tensors[name].values)
        hessian = input_hessian(inputs, name, data)
        weights = torch.from_numpy(np.array(matrix, np.float32))
        matrix[...] = sparsegpt_layer(weights, hessian, 0.5, 128, 0.01).numpy()
    return {name: t.values.copy() for name, t in tensors.items()}
