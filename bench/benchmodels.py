"""What the bench scripts do to the models they train: export them as users would."""

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


def export_onnx(net: nn.Module, example: np.ndarray, path: Path, output: str) -> Path:
    """ONNX with input `x`, one output named `output`, and a symbolic batch dimension."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.from_numpy(example[:1]),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=[output],
            dynamic_axes={"x": {0: "batch"}, output: {0: "batch"}},
        )
    return path
