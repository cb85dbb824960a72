"""A trainable torch view of a model adapter, and the way back.

ONNX trains through onnx2pytorch's conversion of the graph; ``write_back`` puts every trained
value (weights, biases, batch norm scale, shift and running statistics) into the original
initializers, so the saved model is the uploaded graph with new values. TorchScript trains its
own parameters; its prunable weights share memory with the adapter's arrays where they can.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from onnx import numpy_helper

from pruning.calibration.gradients import first_tensor
from pruning.errors import Unsupported, UnsupportedOperator
from pruning.models.base import ModelAdapter
from pruning.models.onnx_model import OnnxModel, session_for
from pruning.models.torch_graph import onnx_to_torch
from pruning.models.torchscript_model import TorchScriptModel
from pruning.tensors import WeightTensor
from pruning.training.onnx_params import Binding, bind_initializers

AGREEMENT = 1e-3  # max |torch - ORT| relative to the output's scale, before training starts


@dataclass
class Trainable:
    module: Any  # torch.nn.Module or a TorchScript module
    weights: dict[str, Binding]  # prunable weight name -> the tensor that holds it
    parameters: list[torch.nn.Parameter]  # what the optimizer updates
    trained: list[str]
    frozen: list[str]
    write_back: Callable[[], None]  # every trained value into the adapter, for save()
    load_pruned: Callable[[], None]  # the adapter's prunable arrays into the torch tensors

    def forward(self, args: Sequence[torch.Tensor]) -> torch.Tensor:
        return first_tensor(self.module(*args))


def trainable(model: ModelAdapter, selected: Sequence[WeightTensor]) -> Trainable:
    if isinstance(model, OnnxModel):
        return _onnx(model, selected)
    if isinstance(model, TorchScriptModel):
        return _torchscript(model, selected)
    raise Unsupported(f"retraining is not available for {model.format} models", field="retrain")


def check_against_runtime(model: ModelAdapter, view: Trainable, args: list[torch.Tensor]) -> None:
    """The ONNX conversion must compute what ONNX Runtime computes, or training would tune
    a different function than the one saved."""
    if not isinstance(model, OnnxModel):
        return
    session = session_for(model.proto.SerializeToString(), threads=1)
    names = [i.name for i in session.get_inputs()]
    expected = np.asarray(
        session.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})[0]
    )
    view.module.eval()
    with torch.no_grad():
        got = view.forward(args).numpy()
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    diff = float(np.abs(got - expected).max(initial=0.0)) if got.shape == expected.shape else np.inf
    if not diff <= AGREEMENT * scale:
        raise UnsupportedOperator(
            f"the torch conversion of the graph (onnx2pytorch) disagrees with ONNX Runtime on "
            f"the training data (max |difference| {diff:.3g}), so it cannot be trained faithfully; "
            "retrain the source model and re-export, or prune without retrain"
        )


def _onnx(model: OnnxModel, selected: Sequence[WeightTensor]) -> Trainable:
    module, _ = onnx_to_torch(model.proto, model.prunable(), [t.name for t in selected])
    bound, unbound = bind_initializers(model.proto.graph, module)
    missing = [t.name for t in selected if t.name not in bound]
    if missing:
        raise UnsupportedOperator(
            f"weight {missing[0]!r} is not a parameter of the torch conversion of the graph "
            "(onnx2pytorch), so it cannot be retrained; exclude it with layers.exclude",
        )
    for p in module.parameters():
        p.requires_grad_(False)
    parameters = []
    for b in bound.values():
        if isinstance(b.tensor, torch.nn.Parameter):
            b.tensor.requires_grad_(True)
            parameters.append(b.tensor)
    adapter = {t.name: t for t in model.prunable()}
    inits = {i.name: i for i in model.proto.graph.initializer}
    weights = {t.name: bound[t.name] for t in selected}

    def write_back() -> None:
        for name, b in bound.items():
            value = b.as_onnx()
            if name in adapter:
                adapter[name].values[...] = value
            else:
                dtype = numpy_helper.to_array(inits[name]).dtype
                inits[name].CopyFrom(numpy_helper.from_array(value.astype(dtype), name))

    def load_pruned() -> None:
        with torch.no_grad():
            for name, b in weights.items():
                value = torch.from_numpy(adapter[name].values)
                b.tensor.copy_(value.T if b.transposed else value)

    trained = [n for n, b in bound.items() if isinstance(b.tensor, torch.nn.Parameter)]
    frozen = [f"{n}: {why}" for n, why in unbound.items()]
    return Trainable(module, weights, parameters, trained, frozen, write_back, load_pruned)


def _torchscript(model: TorchScriptModel, selected: Sequence[WeightTensor]) -> Trainable:
    module = model.module
    own = dict(module.named_parameters())
    parameters, trained, frozen = [], [], []
    for name, p in own.items():
        if p.is_floating_point():
            p.requires_grad_(True)
            parameters.append(p)
            trained.append(name)
        else:
            frozen.append(f"{name}: not a floating-point parameter")
    weights = {t.name: Binding(t.name, own[t.name], False) for t in selected}
    adapter = {t.name: t for t in model.prunable()}
    # bfloat16 or non-contiguous parameters are copies in the adapter (see torchscript_model).
    copies = [n for n, b in weights.items() if not _shares_memory(adapter[n].values, b.tensor)]

    def write_back() -> None:
        for name in copies:
            adapter[name].values[...] = weights[name].tensor.detach().float().numpy()

    def load_pruned() -> None:
        with torch.no_grad():
            for name in copies:
                weights[name].tensor.copy_(torch.from_numpy(adapter[name].values))

    return Trainable(module, weights, parameters, trained, frozen, write_back, load_pruned)


def _shares_memory(values: np.ndarray, tensor: torch.Tensor) -> bool:
    return int(values.__array_interface__["data"][0]) == tensor.data_ptr()
