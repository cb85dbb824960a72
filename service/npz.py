"""Checking an uploaded `.npz` without trusting it: no pickle, no paths, no zip bomb.

Only each member's `.npy` header is parsed (dtype, shape); the data is streamed through once
so the zip's CRC and the declared sizes are verified, but never held in memory.
"""

import zipfile
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

MAX_ARRAYS = 256
MAX_ARRAY_NAME = 256
_CHUNK = 1 << 20
_HEADER_READERS = {
    (1, 0): npy_format.read_array_header_1_0,
    (2, 0): npy_format.read_array_header_2_0,
}


class NpzRefused(ValueError):
    """The file is not an `.npz` this service accepts; the message says why."""


@dataclass(frozen=True)
class NpzSummary:
    samples: int
    arrays: list[dict[str, Any]]  # name, dtype, shape: as `api_schemas.ArrayInfo`


def inspect_npz(path: Path, max_unpacked_bytes: int) -> NpzSummary:
    """Summarise an `.npz` whose arrays share their first dimension (the samples)."""
    if not zipfile.is_zipfile(path):
        raise NpzRefused("not an .npz file (a zip archive of .npy arrays, from numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            members = npz.zip.infolist()
            _check_members(members, max_unpacked_bytes)
            arrays = [_array_info(npz.zip, member) for member in members]
    except (zipfile.BadZipFile, EOFError) as exc:
        raise NpzRefused(f"the archive is damaged: {exc}") from exc
    return NpzSummary(samples=_samples(arrays), arrays=arrays)


def _check_members(members: list[zipfile.ZipInfo], max_unpacked_bytes: int) -> None:
    if not members:
        raise NpzRefused("the archive holds no arrays")
    if len(members) > MAX_ARRAYS:
        raise NpzRefused(f"more than {MAX_ARRAYS} arrays")
    for member in members:
        name = member.filename
        # numpy names members `<array>.npy`; anything else (folders, `..`, absolute paths,
        # backslashes) is an archive built to be extracted somewhere it should not be.
        if not name.endswith(".npy") or any(c in name for c in "/\\\0") or name.startswith("."):
            raise NpzRefused(f"archive member {name[:80]!r} is not a plain `<name>.npy` array")
        if len(name) - 4 > MAX_ARRAY_NAME:
            raise NpzRefused(f"array name longer than {MAX_ARRAY_NAME} characters")
    if len({m.filename for m in members}) != len(members):
        raise NpzRefused("the archive holds two members of the same name")
    unpacked = sum(m.file_size for m in members)
    if unpacked > max_unpacked_bytes:
        raise NpzRefused(
            f"the arrays unpack to {unpacked} bytes, more than a job may load "
            f"({max_unpacked_bytes} bytes)"
        )


def _array_info(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> dict[str, Any]:
    name = member.filename[: -len(".npy")]
    with archive.open(member) as stream:
        shape, dtype = _read_header(stream, name)
        expected = prod(shape) * dtype.itemsize
        if _drain(stream) != expected:
            raise NpzRefused(f"array {name!r}: data does not match its header {shape} {dtype}")
    return {"name": name, "dtype": str(dtype), "shape": list(shape)}


def _read_header(stream: IO[bytes], name: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    try:
        version = npy_format.read_magic(stream)
        reader = _HEADER_READERS.get(version)
        if reader is None:
            raise NpzRefused(f"array {name!r}: unsupported .npy format version {version}")
        shape, _fortran, dtype = reader(stream)
    except ValueError as exc:
        if isinstance(exc, NpzRefused):
            raise
        raise NpzRefused(f"array {name!r}: not a .npy array ({exc})") from exc
    if dtype.hasobject:
        raise NpzRefused(f"array {name!r} holds Python objects (pickle); save plain numbers")
    return shape, dtype


def _drain(stream: IO[bytes]) -> int:
    """Read to the end (zipfile checks the CRC there); return the byte count."""
    size = 0
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
    return size


def _samples(arrays: list[dict[str, Any]]) -> int:
    scalars = [a["name"] for a in arrays if not a["shape"]]
    if scalars:
        raise NpzRefused(f"array {scalars[0]!r} is a scalar; every array needs a samples axis")
    firsts: dict[str, int] = {a["name"]: a["shape"][0] for a in arrays}
    if len(set(firsts.values())) > 1:
        shown = ", ".join(f"{n}: {f}" for n, f in list(firsts.items())[:8])
        raise NpzRefused(f"arrays disagree on the number of samples (first dimension): {shown}")
    return next(iter(firsts.values()))
