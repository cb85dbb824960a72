"""Shears' pruning engine: framework-free (torch, onnx, onnxruntime, numpy), usable from
Python, the local CLI (``shears prune``) and the worker.

    from pruning import inspect_model, prune
    info = inspect_model(Path("model.onnx"))
    result = prune(Path("model.onnx"), {"sparsity": 0.8}, Path("out"))
"""

from pruning.engine import PruneResult, prune
from pruning.errors import (
    DataMismatch,
    EngineError,
    InvalidModel,
    InvalidSpec,
    LayerPatternUnmatched,
    Unsupported,
    UnsupportedModel,
    UnsupportedOperator,
)
from pruning.inspection import inspect_model
from pruning.manifest import KnownDigests
from pruning.version import __version__

__all__ = [
    "DataMismatch",
    "EngineError",
    "InvalidModel",
    "InvalidSpec",
    "KnownDigests",
    "LayerPatternUnmatched",
    "PruneResult",
    "Unsupported",
    "UnsupportedModel",
    "UnsupportedOperator",
    "__version__",
    "inspect_model",
    "prune",
]
