"""Where each initializer's bytes lie on disk, read without loading them.

A single-file ONNX keeps every tensor's bytes inside the protobuf (``raw_data``, or packed
``float_data``/``double_data``); a model with external data keeps them in data files at the
``offset``/``length`` its entries give. Either way a tensor is a byte range of a file, so the
graph can be parsed without its weights: the protobuf wire format is walked over a memory
map (ModelProto.graph is field 7, GraphProto.initializer field 5, TensorProto.raw_data field
9, float_data 4, double_data 10, onnx.proto), each large float initializer is parsed with its
data field left out and its byte range noted. The result, a ``Layout``, is a ModelProto of the
graph alone (``skeleton``) and a ``Region`` per tensor whose bytes it left on disk.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from pruning.errors import InvalidModel
from pruning.models.onnx_archive import check_locations, folder_members
from pruning.models.onnx_model import FLOAT_TYPES, parse_model
from pruning.models.onnx_tensors import external_tensors

_GRAPH, _INITIALIZER = 7, 5
_RAW_DATA, _FLOAT_DATA, _DOUBLE_DATA = 9, 4, 10
# Data fields whose payload is the little-endian array itself (packed fixed-width floats).
_PAYLOADS = {_RAW_DATA: None, _FLOAT_DATA: np.float32, _DOUBLE_DATA: np.float64}
# Smaller tensors stay inside the skeleton: shapes and index constants the graph analysis
# reads (input ranges) are small, and parsing them costs nothing.
INLINE_BYTES = 4096
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class Region:
    """A tensor's bytes: ``nbytes`` from ``offset`` of ``file``, C order, little-endian."""

    file: Path
    offset: int
    nbytes: int
    dtype: np.dtype[np.generic]
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Layout:
    model_file: Path
    skeleton: onnx.ModelProto  # the graph; tensors in ``regions`` carry no data in it
    regions: dict[str, Region]  # initializer name -> its bytes on disk
    archived: bool = False  # ``model_file`` is the upload's archive itself (``archived``)

    def files(self) -> list[Path]:
        """Every file the model reads: the .onnx file first, then its data files."""
        data = sorted({r.file for r in self.regions.values()} - {self.model_file})
        return [self.model_file, *data]


def read_layout(model_file: Path, allow_external: bool) -> Layout:
    """The graph and its tensors' byte ranges; external locations are checked against the
    folder (no escape, no link, inside the file) before any range is trusted."""
    inline: dict[str, Region] = {}
    try:
        with model_file.open("rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise InvalidModel("the file is empty")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    skeleton_bytes = _skeleton(view, model_file, inline)
                finally:
                    view.release()
    except OSError as exc:
        raise InvalidModel(f"cannot read the model file: {exc.strerror}") from exc
    skeleton = parse_model(skeleton_bytes, allow_external)
    regions = dict(inline)
    if allow_external and next(external_tensors(skeleton.graph), None) is not None:
        check_locations(skeleton, "", folder_members(model_file.parent))
        regions.update(_external_regions(skeleton, model_file.parent))
    return Layout(model_file, skeleton, regions)


def _external_regions(proto: onnx.ModelProto, folder: Path) -> Iterator[tuple[str, Region]]:
    for tensor in proto.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        dtype, shape = _kind(tensor)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        length = int(entries.get("length", nbytes))
        if length != nbytes:
            raise InvalidModel(
                f"tensor {tensor.name!r} declares {length} bytes of external data but its "
                f"shape {list(shape)} of {dtype} needs {nbytes}"
            )
        file = folder.joinpath(*entries["location"].split("/"))
        yield tensor.name, Region(file, int(entries.get("offset", 0)), nbytes, dtype, shape)


def _kind(tensor: onnx.TensorProto) -> tuple[np.dtype[np.generic], tuple[int, ...]]:
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
    except (KeyError, TypeError) as exc:
        raise InvalidModel(f"tensor {tensor.name!r} has an unknown data type") from exc
    return dtype.newbyteorder("<"), tuple(int(d) for d in tensor.dims)


# -- the wire format -------------------------------------------------------------------------
def _skeleton(data: memoryview, file: Path, regions: dict[str, Region]) -> bytes:
    """The model's bytes with the data of large float initializers left out."""
    out = bytearray()
    for number, start, body, end in _fields(data, 0, len(data)):
        if number == _GRAPH and body is not None:
            graph = _graph_skeleton(data, body, end, file, regions)
            out += _key(_GRAPH) + _varint(len(graph)) + graph
        else:
            out += data[start:end]
    return bytes(out)


def _graph_skeleton(
    data: memoryview, begin: int, stop: int, file: Path, regions: dict[str, Region]
) -> bytes:
    out = bytearray()
    for number, start, body, end in _fields(data, begin, stop):
        if number == _INITIALIZER and body is not None:
            tensor = _tensor_skeleton(data, body, end, file, regions)
            out += _key(_INITIALIZER) + _varint(len(tensor)) + tensor
        else:
            out += data[start:end]
    return bytes(out)


def _tensor_skeleton(
    data: memoryview, begin: int, stop: int, file: Path, regions: dict[str, Region]
) -> bytes:
    """The TensorProto without its data field, when that field is one contiguous array of a
    float type larger than ``INLINE_BYTES`` (its region noted, as for smaller ones); otherwise
    the tensor whole."""
    kept, payload = bytearray(), None
    for number, start, body, end in _fields(data, begin, stop):
        if number in _PAYLOADS and body is not None and payload is None:
            payload = (number, body, end)
        else:
            kept += data[start:end]
    head = onnx.TensorProto()
    head.ParseFromString(bytes(kept))
    if payload is None or head.data_type not in FLOAT_TYPES:
        return bytes(data[begin:stop])
    number, body, end = payload
    dtype, shape = _kind(head)
    packed = _PAYLOADS[number]
    if packed is not None and np.dtype(packed) != dtype:
        return bytes(data[begin:stop])
    if end - body != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise InvalidModel(f"tensor {head.name!r} holds a number of bytes its shape does not")
    regions[head.name] = Region(file, body, end - body, dtype, shape)
    return bytes(kept) if end - body > INLINE_BYTES else bytes(data[begin:stop])


def _fields(data: memoryview, pos: int, stop: int) -> Iterator[tuple[int, int, int | None, int]]:
    """(field number, start of the field, start of a length-delimited body or None, end)."""
    while pos < stop:
        start = pos
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        body: int | None = None
        if wire == _VARINT:
            _, pos = _read_varint(data, pos)
        elif wire == _FIXED64:
            pos += 8
        elif wire == _FIXED32:
            pos += 4
        elif wire == _LEN:
            length, body = _read_varint(data, pos)
            pos = body + length
        else:
            raise InvalidModel(f"the file is not an ONNX model (protobuf wire type {wire})")
        if pos > stop:
            raise InvalidModel("the file is not an ONNX model (a field runs past its end)")
        yield number, start, body, pos


def _read_varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise InvalidModel("the file is not an ONNX model (a truncated varint)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _key(number: int) -> bytes:
    return _varint(number << 3 | _LEN)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
