"""Sparse variational dropout samples pre-activations by the local reparameterisation on the
Linear and Conv layers of an ONNX model's trainable view: each example's pre-activation is
drawn from N(x·theta, x^2·sigma^2) with its own noise, and compiled TorchScript, whose layers
a hook cannot reach, keeps per-weight noise and says so in the report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pruning import prune
from pruning.models import open_model
from pruning.training.learned.base import Setup
from pruning.training.learned.variational_dropout import VariationalDropoutMethod
from pruning.training.trainable import Trainable, trainable
from shears_methods import METHODS
from tests.engine.test_learned_methods import WEIGHTS
from tests.engine.training_factories import (
    digits,
    digits_datasets,
    export_digits,
    make_digits_convnet,
    make_digits_mlp,
    retrain_spec,
    trained,
    weights_of,
)

DRAWS = 2000


def _vd_on(path: Path) -> tuple[Trainable, VariationalDropoutMethod]:
    model = open_model(path)
    view = trainable(model, model.prunable())
    setup = Setup(
        weights={n: b.tensor for n, b in view.weights.items()},
        target_density=0.1,
        total_steps=100,
        scope="global",
        # Large noise (init_log_alpha -1): the variance is easy to measure.
        options={**METHODS["variational_dropout"].defaults(), "init_log_alpha": -1.0},
    )
    return view, VariationalDropoutMethod(setup)


def _first_conv(view: Trainable) -> tuple[str, torch.nn.Conv2d]:
    names = {id(b.tensor): n for n, b in view.weights.items()}
    conv = next(m for m in view.module.modules() if isinstance(m, torch.nn.Conv2d))
    return names[id(conv.weight)], conv


def test_every_linear_and_conv_weight_of_an_onnx_graph_is_locally_reparameterised(
    tmp_path: Path,
) -> None:
    path = export_digits(make_digits_convnet(batch_norm=False), tmp_path / "cnn.onnx")
    view, method = _vd_on(path)

    detach = method.attach(view.module)

    assert method.local == set(view.weights) and len(method.local) == 4
    assert set(method.noise.values()) == {"local reparameterisation (pre-activations per example)"}
    effective = method.effective(training=True)  # no weight noise where the layer samples it
    for name, theta in method.theta.items():
        kept = method.log_alpha(name) < method.threshold
        assert torch.equal(effective[name], theta * kept)
    detach()
    noisy = method.effective(training=True)  # once detached, the weights are sampled again
    assert not torch.equal(noisy[next(iter(noisy))], effective[next(iter(noisy))])


def test_pre_activations_are_drawn_per_example_with_the_lrt_variance(tmp_path: Path) -> None:
    path = export_digits(make_digits_convnet(batch_norm=False), tmp_path / "cnn.onnx")
    view, method = _vd_on(path)
    name, conv = _first_conv(view)
    image = torch.from_numpy(digits()[0][:1])
    batch = image.expand(DRAWS, -1, -1, -1)  # one image, DRAWS times in one mini-batch
    method.attach(view.module)
    with torch.no_grad():
        for b in view.weights.values():
            b.tensor.copy_(method.effective(training=True)[b.name].detach())
    view.module.train()

    with torch.no_grad():
        drawn = conv(batch)  # [draws, channels, 8, 8], the hook's sample
        again = conv(batch)
        mean = F.conv2d(image, method.effective(training=False)[name], conv.bias, padding=1)[0]
        variance = F.conv2d(image**2, method.sigma2(name), None, padding=1)[0]

    assert not torch.equal(drawn, again)  # two forwards of the same batch differ
    # Independent noise per example: copies of one image get uncorrelated noise.
    centred = drawn - mean
    assert float((centred[0::2] * centred[1::2]).mean()) < 0.05 * float(variance.mean())
    # Mean x·theta and variance x^2·sigma^2 (2000 draws: ~3% standard error per element).
    assert torch.allclose(drawn.mean(dim=0), mean, atol=0.1)
    measured = drawn.var(dim=0)
    assert float(measured.sum() / variance.sum()) == pytest.approx(1.0, abs=0.03)
    busy = variance > 0.1 * variance.max()
    per_element = measured[busy] / variance[busy]
    assert float(per_element.max()) < 1.25 and float(per_element.min()) > 0.75


def test_eval_mode_computes_the_mean_with_no_noise(tmp_path: Path) -> None:
    path = export_digits(make_digits_convnet(batch_norm=False), tmp_path / "cnn.onnx")
    view, method = _vd_on(path)
    method.attach(view.module)
    with torch.no_grad():
        for b in view.weights.values():
            b.tensor.copy_(method.effective(training=False)[b.name])
    view.module.eval()
    images = torch.from_numpy(digits()[0][:8])

    with torch.no_grad():
        first, second = view.forward([images]), view.forward([images])

    assert torch.equal(first, second)


@pytest.mark.parametrize(
    ("suffix", "local"),
    [(".onnx", True), (".pt", False)],
    ids=["onnx-local-reparameterisation", "torchscript-weight-noise"],
)
def test_variational_dropout_reports_its_noise_and_ends_at_the_exact_sparsity(
    tmp_path: Path, suffix: str, local: bool
) -> None:
    model = export_digits(trained(make_digits_mlp(), epochs=4), tmp_path / f"mlp{suffix}")
    spec = retrain_spec(0.9, {"kind": "one_shot"}, epochs=3)
    spec["method"] = {"name": "variational_dropout"}

    result = prune(model, spec, tmp_path / "out", datasets=digits_datasets(tmp_path, model))

    weights = weights_of(result.artifacts["model"], list(WEIGHTS))
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    assert zeros == round(0.9 * sum(w.size for w in weights.values()))
    noise = result.report["training"]["learned"]["noise"]
    assert set(noise) == set(WEIGHTS)
    for how in noise.values():
        assert how.startswith("local reparameterisation" if local else "per weight")
    assert result.report["quality"]["metric"]["pruned"] > 0.15
