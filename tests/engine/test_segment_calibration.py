"""Segment-wise calibration (issue 14), ONNX and TorchScript: the inputs each layer sees, and
the weights SparseGPT leaves, equal those of the whole-model capture run once per layer, on
graphs with branches (a residual stream, q/k/v reading one tensor, a mask read late) and with
a layer applied twice around another one."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from pruning.calibration.capture import layer_inputs, layer_sequence, whole_model_sequence
from pruning.calibration.dataset import CalibrationData
from pruning.calibration.stats import hessian_of
from pruning.methods.calibrated import CalibratedJob
from pruning.methods.sparsegpt import SparseGPTMethod, sparsegpt_layer
from pruning.models import open_model
from pruning.models.base import ModelAdapter
from shears_methods import METHODS

WIDTH, SEQ, SAMPLES = 16, 6, 40
FORMATS = ("onnx", "script", "trace")


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
    """One Linear applied twice, another layer between its uses: its weight is read by two
    nodes, and the layer between them is calibrated before it."""

    def __init__(self) -> None:
        super().__init__()
        self.shared, self.middle = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, WIDTH)
        self.head = nn.Linear(WIDTH, 4)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.middle(torch.relu(self.shared(x)))
        out: torch.Tensor = self.head(self.shared(torch.relu(h)) * mask[:, :, None])
        return out


NETS: dict[str, Callable[[], nn.Module]] = {"attention": AttentionBlock, "reused": Reused}


def save(kind: str, form: str, path: Path) -> ModelAdapter:
    """The net with seeded weights, exported as ONNX or saved as scripted/traced TorchScript."""
    torch.manual_seed(0)
    net = NETS[kind]().eval()
    for p in net.parameters():
        nn.init.normal_(p, std=0.5)
    x, mask = torch.randn(2, SEQ, WIDTH), torch.ones(2, SEQ)
    path = path / f"{kind}-{form}{'.onnx' if form == 'onnx' else '.pt'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if form == "onnx":
            torch.onnx.export(
                net,
                (x, mask),
                str(path),
                dynamo=False,
                input_names=["x", "mask"],
                output_names=["y"],
                dynamic_axes={"x": {0: "b"}, "mask": {0: "b"}, "y": {0: "b"}},
            )
            read_weights_directly(path)
        else:
            module = torch.jit.script(net) if form == "script" else torch.jit.trace(net, (x, mask))  # type: ignore[no-untyped-call]
            module.save(str(path))
    return open_model(path)


def read_weights_directly(path: Path) -> None:
    """The exporter reads a reused weight through an ``Identity`` copy (two initializer
    names); other exporters let both MatMul nodes read one initializer, as done here."""
    proto = onnx.load(str(path))
    copies = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Identity"}
    kept = [n for n in proto.graph.node if n.op_type != "Identity"]
    for node in kept:
        node.input[:] = [copies.get(name, name) for name in node.input]
    del proto.graph.node[:]
    proto.graph.node.extend(kept)
    onnx.save(proto, str(path))


def calibration() -> CalibrationData:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(SAMPLES, SEQ, WIDTH)).astype(np.float32)
    mask = (rng.random((SAMPLES, SEQ)) > 0.3).astype(np.float32)
    return CalibrationData("ds", {"x": x, "mask": mask}, None, SAMPLES, batch=16)


def names(model: ModelAdapter) -> list[str]:
    return [t.name for t in model.prunable()]


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("kind", sorted(NETS))
def test_each_layer_sees_the_inputs_of_a_whole_model_run(
    tmp_path: Path, kind: str, form: str
) -> None:
    model = save(kind, form, tmp_path)
    inputs, data = layer_inputs(model, ["x", "mask"]), calibration()
    seen = []
    for group, captured in layer_sequence(inputs, names(model), data):
        seen += group
        for name in group:
            [(_, expected)] = whole_model_sequence(inputs, [name], data)
            for got, want in zip(captured, expected, strict=True):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert sorted(seen) == sorted(names(model))


@pytest.mark.parametrize("form", FORMATS)
def test_layers_reading_one_tensor_are_captured_once(tmp_path: Path, form: str) -> None:
    model = save("attention", form, tmp_path)
    inputs = layer_inputs(model, ["x", "mask"])
    groups = [group for group, _ in layer_sequence(inputs, names(model), calibration())]
    assert [len(group) for group in groups] == [3, 1, 1, 1]  # q, k, v; o; up; down


@pytest.mark.parametrize("form", FORMATS)
def test_a_layer_applied_twice_is_calibrated_on_the_inputs_of_both_uses(
    tmp_path: Path, form: str
) -> None:
    model = save("reused", form, tmp_path)
    inputs, data = layer_inputs(model, ["x", "mask"]), calibration()
    shared = names(model)[0]  # first used first, in ONNX graph order as in module order
    groups = dict((g[0], c) for g, c in layer_sequence(inputs, names(model), data))
    torch.manual_seed(0)
    net = Reused()
    for p in net.parameters():
        nn.init.normal_(p, std=0.5)
    x = torch.from_numpy(data.inputs["x"])
    with torch.no_grad():
        second = torch.relu(net.middle(torch.relu(net.shared(x))))
    rows = torch.cat(groups[shared])
    assert rows.shape == (2 * SAMPLES * SEQ, WIDTH)  # both uses, every token
    expected = {
        tuple(r) for r in torch.cat([x, second]).reshape(-1, WIDTH).round(decimals=3).tolist()
    }
    assert {tuple(r) for r in rows.round(decimals=3).tolist()} == expected


@pytest.mark.parametrize("form", ("onnx", "script"))
@pytest.mark.parametrize("kind", sorted(NETS))
def test_sparsegpt_leaves_the_weights_of_the_sequential_whole_model_scheme(
    tmp_path: Path, kind: str, form: str
) -> None:
    segmented = save(kind, form, tmp_path)
    (tmp_path / "naive").mkdir()
    naive = save(kind, form, tmp_path / "naive")
    data, events = calibration(), []
    sparsegpt_half(segmented, data, events)
    reference = sequential_whole_model(naive, data, order=events)
    assert sorted(events) == sorted(names(segmented))  # each layer named as it is pruned
    for t in segmented.prunable():
        np.testing.assert_allclose(t.values, reference[t.name], rtol=1e-4, atol=1e-5)
        assert np.count_nonzero(t.values == 0) == t.values.size // 2


def test_a_shared_layer_is_pruned_after_the_layers_between_its_uses(tmp_path: Path) -> None:
    events: list[str | None] = []
    model = save("reused", "onnx", tmp_path)
    sparsegpt_half(model, calibration(), events)
    shared, middle, head = names(model)  # in the order of their first use
    assert events == [middle, shared, head]


def sequential_whole_model(
    model: ModelAdapter, data: CalibrationData, order: list[str | None]
) -> dict[str, np.ndarray]:
    """The scheme before segments: for each layer in ``order``, the whole model from the
    current weights gives the inputs of all its uses, then the layer is pruned."""
    inputs = layer_inputs(model, ["x", "mask"])
    tensors = {t.name: t for t in model.prunable()}
    for name in order:
        assert name is not None
        geometry = inputs.geometry[name]
        matrix = geometry.matrix(tensors[name].values)
        [(_, captured)] = whole_model_sequence(inputs, [name], data)
        weights = torch.from_numpy(np.array(matrix, np.float32))
        matrix[...] = sparsegpt_layer(
            weights, hessian_of(geometry, captured), 0.5, 128, 0.01
        ).numpy()
    return {name: t.values.copy() for name, t in tensors.items()}


def sparsegpt_half(model: ModelAdapter, data: CalibrationData, events: list[str | None]) -> None:
    """SparseGPT to 50% layerwise, in place, each layer's name appended to ``events``."""
    job = CalibratedJob(
        model=model,
        tensors=model.prunable(),
        sparsity=0.5,
        scope="layerwise",
        overrides={},
        data=data,
        input_names=["x", "mask"],
        progress=lambda fraction, layer=None: events.append(layer),
    )
    SparseGPTMethod(**METHODS["sparsegpt"].defaults()).prune(job)
