"""One line per granularity on what the hardware that timed the model can exploit; the same
latency measurement is used for all of them, so the speedups compare like with like."""

from __future__ import annotations

UNSTRUCTURED = (
    "Unstructured zeros: dense CPU kernels (ONNX Runtime, torch) multiply zeros like any other "
    "value, so this saves storage, not time."
)
NM = (
    "N:M zeros: the dense CPU kernels timed here cannot skip them, so no speedup is expected; "
    "2:4 layers marked sparse_tensor_cores can be sped up on NVIDIA GPUs with sparse tensor "
    "cores (Ampere or later, fp16/bf16/int8), which this measurement does not use."
)
CHANNEL = (
    "Channels removed: every cut layer is a smaller dense matrix, so the same dense kernels do "
    "less work; the speedup is real and grows with the share of time spent in cut layers."
)
CHANNEL_ZEROED = (
    "Channels zeroed, not removed (this TorchScript model could not be shrunk safely): the "
    "layers keep their shapes and dense kernels do the same work, so no speedup is expected."
)


def explain(granularity: str, physically_smaller: bool = True) -> str:
    if granularity == "n:m":
        return NM
    if granularity == "channel":
        return CHANNEL if physically_smaller else CHANNEL_ZEROED
    return UNSTRUCTURED


def explain_no_gain(granularity: str, physically_smaller: bool = True) -> str:
    """When no batch size sped up (``pruning.latency.NO_SPEEDUP``)."""
    if granularity == "channel" and physically_smaller:
        return (
            "No speedup was measured although channels were removed: the cut layers take "
            "little of this model's run time (fixed per-run costs dominate small models)."
        )
    return explain(granularity, physically_smaller)
