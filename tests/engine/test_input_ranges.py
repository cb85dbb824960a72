"""Which values synthetic inputs take, read from how each graph uses its integer inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from pruning.input_ranges import InputRange
from pruning.models import open_model


class CastIdsBoolMask(nn.Module):
    """int32 ids cast and reshaped before the lookup; a bool mask selecting with where; an
    int64 count used only in arithmetic."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(37, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(ids.long().reshape(ids.shape[0], -1))
        hidden = torch.where(mask.unsqueeze(-1), hidden, torch.zeros_like(hidden))
        return self.fc(hidden.sum(1)) + scale.to(torch.float32)


def _examples() -> tuple[torch.Tensor, ...]:
    ids = torch.zeros(2, 6, dtype=torch.int32)
    return ids, torch.ones(2, 6, dtype=torch.bool), torch.ones(2, 1, dtype=torch.int64)


def _export(path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if path.suffix == ".onnx":
            torch.onnx.export(
                CastIdsBoolMask().eval(),
                _examples(),
                str(path),
                dynamo=False,
                input_names=["ids", "mask", "scale"],
                output_names=["y"],
            )
        else:
            torch.jit.save(torch.jit.trace(CastIdsBoolMask().eval(), _examples()), str(path))
    return path


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_ids_through_casts_index_the_embedding_and_a_where_condition_is_a_mask(
    tmp_path: Path, suffix: str
) -> None:
    ranges = open_model(_export(tmp_path / f"model{suffix}")).input_ranges()
    assert ranges["ids"] == InputRange("indices", 37, "indices of 'embed.weight' (37 rows)")
    assert ranges["mask"].kind == "mask"
    assert ranges["scale"].kind == "free"
