"""Sparse storage of pruned weights: a sparse npz, ONNX sparse initializers, and their sizes.

encode_sparse_npz / decode_sparse_npz   pruned tensors in one .npz (see sparse_npz)
rebuild_model                           original model + sparse npz -> full model file
write_onnx_sparse                       ONNX with graph.sparse_initializer, checked in ORT
storage_report                          bytes per format (computed, measured or sampled) and the
                                        entropy floor
"""

from pruning.formats.errors import ModelMismatch, SparseFormatError
from pruning.formats.onnx_sparse import Fallback, OnnxSparseResult, write_onnx_sparse
from pruning.formats.rebuild import ModelFormat, rebuild_model, rebuild_onnx, rebuild_torchscript
from pruning.formats.sparse_npz import (
    FORMAT_VERSION,
    SparseNpz,
    TensorChoice,
    choose_encoding,
    decode_sparse_npz,
    encode_sparse_npz,
)
from pruning.formats.storage import storage_report

__all__ = [
    "FORMAT_VERSION",
    "Fallback",
    "ModelFormat",
    "ModelMismatch",
    "OnnxSparseResult",
    "SparseFormatError",
    "SparseNpz",
    "TensorChoice",
    "choose_encoding",
    "decode_sparse_npz",
    "encode_sparse_npz",
    "rebuild_model",
    "rebuild_onnx",
    "rebuild_torchscript",
    "storage_report",
    "write_onnx_sparse",
]
