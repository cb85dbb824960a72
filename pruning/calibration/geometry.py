"""How a layer's weight meets its input: the weight as a matrix ``[outputs, columns]`` and the
captured input as rows ``[tokens, columns]`` over the same columns, so that the layer computes
``rows @ matrix.T``. Linear layers: columns are input features. Conv layers: columns are
``(channel, kh, kw)`` patches, the rows their unfolded input (im2col), as SparseGPT does for
convolutions (Frantar & Alistarh 2023, sec. 3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pruning.errors import Unsupported
from pruning.tensors import FloatArray


@dataclass(frozen=True)
class LayerGeometry:
    kind: str  # "linear" or "conv"
    transposed: bool = False  # a linear weight stored [in, out] (ONNX MatMul, Gemm transB=0)
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)

    def matrix(self, weight: FloatArray) -> FloatArray:
        """A view of ``weight`` as ``[outputs, columns]`` (writes go through to the weight)."""
        if self.kind == "conv":
            return weight.reshape(weight.shape[0], -1)
        return weight.T if self.transposed else weight

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's input as ``[tokens, columns]`` in float32."""
        x = x.float()
        if self.kind == "linear":
            return x.reshape(-1, x.shape[-1])
        top, left, bottom, right = self.padding
        x = F.pad(x, (left, right, top, bottom))
        patches = F.unfold(x, self.kernel, dilation=self.dilation, stride=self.stride)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])

    def stack(self, uses: Sequence[torch.Tensor], name: str) -> torch.Tensor:
        """The inputs of every use of one weight (a layer applied twice, tied weights) as one
        input: the layerwise error of a shared weight is the sum over its uses,
        ``sum_u ||W X_u - W' X_u||^2``, so its statistics are those of the uses' rows
        stacked. Linear inputs are stacked as rows; conv inputs along the batch axis."""
        if len(uses) == 1:
            return uses[0]
        if self.kind == "linear":
            return torch.cat([x.reshape(-1, x.shape[-1]) for x in uses])
        if len({tuple(x.shape[1:]) for x in uses}) > 1:
            raise Unsupported(
                f"layer {name!r} is applied to inputs of different shapes; exclude it with "
                "layers.exclude",
                field="layers",
            )
        return torch.cat(list(uses))


def conv_geometry(
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> LayerGeometry:
    """2-D convolutions; ``padding`` as (top, left, bottom, right) or symmetric (h, w)."""
    pads = tuple(padding) if len(padding) == 4 else (*padding, *padding)
    return LayerGeometry(
        "conv",
        kernel=(int(kernel[0]), int(kernel[1])),
        stride=(int(stride[0]), int(stride[1])),
        padding=(int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3])),
        dilation=(int(dilation[0]), int(dilation[1])),
    )


def split_rows(counts: int, total: int, fraction: float) -> np.ndarray:
    """How many of ``total`` elements to prune in each of ``counts`` equal groups so that the
    sum is exactly ``round(fraction * counts * total)`` (the engine's per-layer promise)."""
    ends = np.rint(fraction * total * np.arange(counts + 1)).astype(np.int64)
    return np.diff(ends)
