"""Heads of ``nn.MultiheadAttention`` in TorchScript (scripted, and traced from it) are kept and
the report says why, naming the module and what ties its inner width to the model width; the
cut that would remove them is tried here and fails as the reason says."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from pruning import prune
from pruning.structured.torchscript_heads import multihead_attention_units


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 32)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        mixed, _ = self.attn(h, h, h, need_weights=False)
        out: torch.Tensor = self.head(mixed.mean(dim=1))
        return out


def _example() -> torch.Tensor:
    return torch.randn(2, 8, 6)


def _compiled(how: str) -> torch.jit.ScriptModule:
    torch.manual_seed(0)
    model = _Encoder().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if how == "script":
            return torch.jit.script(model)
        traced: torch.jit.ScriptModule = torch.jit.trace(model, (_example(),), check_trace=False)
        return traced


def _cut_two_heads(attention: torch.jit.ScriptModule) -> None:
    """What removing heads 2 and 3 would take: q, k, v rows and out_proj columns."""
    columns = torch.arange(16)
    rows = torch.cat([columns, columns + 32, columns + 64])
    with torch.no_grad():
        attention.in_proj_weight = nn.Parameter(attention.in_proj_weight[rows].clone())
        attention.in_proj_bias = nn.Parameter(attention.in_proj_bias[rows].clone())
        out = attention.out_proj
        out.weight = nn.Parameter(out.weight[:, columns].clone())


@pytest.mark.parametrize(
    ("how", "names"),
    [("script", "3 x embed_dim"), ("trace", "aten::unflatten")],
)
def test_multihead_attention_heads_are_refused_naming_the_module_and_why(
    how: str, names: str
) -> None:
    (unit,) = multihead_attention_units(_compiled(how))
    assert (unit["kind"], unit["layer"], unit["heads"]) == ("head", "attn", 4)
    assert unit["units"] is None and unit["kept"] is None
    assert "nn.MultiheadAttention 'attn' (num_heads=4)" in unit["reason"]
    assert names in unit["reason"]


@pytest.mark.parametrize(
    ("how", "failure"),
    [("script", "3x embed_dim"), ("trace", "unflatten")],
)
def test_cutting_the_heads_weights_breaks_the_compiled_module_as_the_reason_says(
    how: str, failure: str
) -> None:
    module = _compiled(how)
    _cut_two_heads(module.attn)
    if how == "script":
        module.attn.num_heads = 2
    with pytest.raises(RuntimeError, match=failure), torch.no_grad():
        module(_example())


def test_a_channel_job_on_torchscript_reports_the_kept_heads(tmp_path: Path) -> None:
    path = tmp_path / "mha.pt"
    torch.jit.save(_compiled("trace"), str(path))
    spec = {
        "sparsity": 0.5,
        "granularity": {"kind": "channel"},
        "latency": {"batch_sizes": [1], "iterations": 2, "warmup": 1, "budget_s": 0.5},
    }
    report = prune(path, spec, tmp_path / "out").report
    (unit,) = report["structure"]["units"]
    assert unit["layer"] == "attn" and "aten::unflatten" in unit["reason"]
    assert report["structured"]["heads_removed"]["total"] == 0
