"""ONNX models with external data, uploaded as one `.zip` or `.tar`: exactly one `.onnx` file
and the data files its tensors name (the layout `onnx.save_model(...,
save_as_external_data=True)` writes).

Every tensor's `location` is checked against the archive's index before a byte of data is
read or written: relative, no `..`, inside the archive, a regular member (no link or device),
offset + length inside that member (the attacks of CVE-2022-25882 and CVE-2024-27318 name
files outside the model's folder or read past a file's end). Only then are the `.onnx` file
and the data files it names extracted, each copied up to its declared size.

The pruned model goes back in the same packaging: `pack` writes the `.onnx` file and its one
data file into an archive of the input's kind, stored without compression (the weights of a
model barely deflate, and deflating gigabytes costs minutes).
"""

from __future__ import annotations

import posixpath
import shutil
import tarfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import onnx

from pruning.errors import InvalidModel
from pruning.models.onnx_tensors import external_tensors

ZIP, TAR = "zip", "tar"
_TAR_MAGIC_AT = 257  # "ustar" in a POSIX or GNU tar header
_ONNX_FILE_LIMIT = 2**31 - 1  # protobuf's limit: the graph itself must be one message
# Members of a TorchScript archive: a zip holding these is a TorchScript model.
_TORCHSCRIPT_MARKERS = ("/data.pkl", "/constants.pkl", "/.data/version")


@dataclass(frozen=True)
class Member:
    name: str  # normalised path inside the archive
    size: int


def archive_kind(path: Path) -> str | None:
    """`zip` or `tar` for an archive holding an `.onnx` file, None for anything else (a plain
    ONNX file, a TorchScript archive)."""
    with path.open("rb") as f:
        head = f.read(_TAR_MAGIC_AT + 5)
    if head.startswith(b"PK\x03\x04") and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith(_TORCHSCRIPT_MARKERS) for n in names):
            return None
        return ZIP if any(n.lower().endswith(".onnx") for n in names) else None
    if head[_TAR_MAGIC_AT:].startswith(b"ustar"):
        return TAR
    return None


def unpack(path: Path, dest: Path, kind: str | None = None) -> Path:
    """Check the archive and its tensors' locations, extract the `.onnx` file and the data
    files it names into `dest`; returns the `.onnx` file's path there. `kind`: what
    `archive_kind` already said of the file."""
    kind = kind or archive_kind(path)
    if kind is None:
        raise InvalidModel("the file is not a .zip or .tar archive holding an .onnx model")
    with _Archive.open(path, kind) as archive:
        members = archive.members()
        onnx_name = _the_onnx_member(members)
        proto = _parse_graph(archive.read(onnx_name, _ONNX_FILE_LIMIT))
        needed = check_locations(proto, posixpath.dirname(onnx_name), members)
        for name in [onnx_name, *sorted(needed)]:
            target = dest.joinpath(*name.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                archive.copy(name, members[name].size, out)
    return dest.joinpath(*onnx_name.split("/"))


def check_locations(proto: onnx.ModelProto, folder: str, members: Mapping[str, Member]) -> set[str]:
    """The member names the model's external tensors read; InvalidModel naming the first
    tensor whose location is unsafe or out of bounds. `folder` is the `.onnx` file's."""
    needed: set[str] = set()
    for tensor in external_tensors(proto.graph):
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        name = _safe_join(folder, location, tensor.name)
        member = members.get(name)
        if member is None:
            raise InvalidModel(
                f"tensor {tensor.name!r} names external data {location!r}, which the archive "
                "does not hold as a regular file; put the data files the .onnx file names "
                "beside it in the archive"
            )
        offset = _int(entries, "offset", tensor.name) or 0
        length = _int(entries, "length", tensor.name)
        end = offset + (length if length is not None else _byte_size(tensor))
        if offset > member.size or end > member.size:
            raise InvalidModel(
                f"tensor {tensor.name!r} reads bytes {offset}..{end} of {location!r}, "
                f"which holds {member.size}: the data file is truncated or the offsets are wrong"
            )
        needed.add(name)
    return needed


def folder_members(folder: Path) -> dict[str, Member]:
    """A model folder on disk as archive members: the regular files under it (no links)."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            name = path.relative_to(folder).as_posix()
            found[name] = Member(name, path.stat().st_size)
    return found


def unpacked_files(onnx_file: Path) -> list[Path]:
    """The `.onnx` file and the data files beside it that it names."""
    proto = onnx.load(str(onnx_file), load_external_data=False)
    names = sorted({_location(t) for t in external_tensors(proto.graph)})
    return [onnx_file, *(onnx_file.parent / n for n in names)]


def pack(onnx_file: Path, kind: str, out: Path) -> Path:
    """The `.onnx` file and the data files beside it that it names, as an archive of `kind`."""
    files = unpacked_files(onnx_file)
    if kind == ZIP:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for file in files:
                archive.write(file, _member_name(file, onnx_file))
    else:
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as archive:
            for file in files:
                info = archive.gettarinfo(str(file), _member_name(file, onnx_file))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0  # the same model gives the same bytes
                with file.open("rb") as f:
                    archive.addfile(info, f)
    return out


def _member_name(file: Path, onnx_file: Path) -> str:
    """Data files keep their path relative to the .onnx file: the locations name them so."""
    return file.name if file == onnx_file else file.relative_to(onnx_file.parent).as_posix()


def _byte_size(tensor: onnx.TensorProto) -> int:
    """What a tensor without a `length` reads: its elements times their size."""
    count = 1
    for dim in tensor.dims:
        count *= dim
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError):
        return 0  # a type numpy cannot hold: ONNX Runtime checks it
    return count * int(itemsize)


def _location(tensor: onnx.TensorProto) -> str:
    return str(next(e.value for e in tensor.external_data if e.key == "location"))


def _safe_join(folder: str, location: str, tensor: str) -> str:
    fault = _path_fault(location)
    if fault == "malformed":
        raise InvalidModel(f"tensor {tensor!r} has an empty or malformed external location")
    if fault == "absolute":
        raise InvalidModel(
            f"tensor {tensor!r} names external data at the absolute path {location!r}; "
            "locations must be relative to the .onnx file"
        )
    if fault == "escaping":
        raise InvalidModel(
            f"tensor {tensor!r} names external data {location!r}, outside the model's folder"
        )
    return posixpath.normpath(posixpath.join(folder, location))


def _path_fault(path: str) -> str | None:
    """What makes a path inside the archive unsafe to follow, if anything: one rule for the
    archive's entries and for the locations its tensors name."""
    if not path or "\\" in path or "\x00" in path:
        return "malformed"
    if path.startswith("/") or ":" in path.split("/")[0]:  # "C:" is absolute on Windows
        return "absolute"
    if ".." in path.split("/"):
        return "escaping"
    return None


def _int(entries: Mapping[str, str], key: str, tensor: str) -> int | None:
    value = entries.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise InvalidModel(f"tensor {tensor!r} has external data {key} {value!r}")
    return number


def _the_onnx_member(members: Mapping[str, Member]) -> str:
    found = [n for n in members if n.lower().endswith(".onnx")]
    if len(found) != 1:
        raise InvalidModel(
            f"the archive holds {len(found)} .onnx files ({', '.join(found[:4]) or 'none'}); "
            "it must hold exactly one, with the data files it names"
        )
    return found[0]


def _parse_graph(data: bytes) -> onnx.ModelProto:
    from pruning.models.onnx_model import parse_model

    return parse_model(data, allow_external=True)


def _normalised(name: str) -> str:
    if _path_fault(name) is not None:
        raise InvalidModel(f"archive entry {name[:200]!r} has an absolute or escaping path")
    cleaned = posixpath.normpath(name)
    if cleaned == ".":
        raise InvalidModel(f"archive entry {name[:200]!r} has no name")
    return cleaned


class _Archive:
    """Zip and tar behind one small surface: members, read one, copy one."""

    def __init__(self, kind: str, zip_file: zipfile.ZipFile | None, tar: tarfile.TarFile | None):
        self.kind, self.zip, self.tar = kind, zip_file, tar

    @classmethod
    def open(cls, path: Path, kind: str) -> _Archive:
        if kind == ZIP:
            return cls(kind, zipfile.ZipFile(path), None)
        try:
            return cls(kind, None, tarfile.open(path, "r:"))
        except tarfile.TarError as exc:
            raise InvalidModel(f"the tar archive cannot be read: {exc}") from exc

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *_: object) -> None:
        (self.zip or self.tar).close()  # type: ignore[union-attr]

    def members(self) -> dict[str, Member]:
        found: dict[str, Member] = {}
        for name, size, regular, kind in self._entries():
            if kind == "dir":
                continue
            if not regular:
                raise InvalidModel(
                    f"archive entry {name[:200]!r} is a {kind}; a model archive holds regular "
                    "files only"
                )
            clean = _normalised(name)
            if clean in found:
                raise InvalidModel(f"archive entry {clean!r} appears twice")
            found[clean] = Member(clean, size)
        return found

    def _entries(self) -> Iterator[tuple[str, int, bool, str]]:
        if self.zip is not None:
            for info in self.zip.infolist():
                mode = (info.external_attr >> 16) & 0o170000
                if info.is_dir():
                    yield info.filename, 0, False, "dir"
                elif mode and mode != 0o100000:
                    yield info.filename, info.file_size, False, "link or special file"
                else:
                    yield info.filename, info.file_size, True, "file"
            return
        assert self.tar is not None
        for member in self.tar.getmembers():
            if member.isdir():
                yield member.name, 0, False, "dir"
            elif member.isfile():
                yield member.name, member.size, True, "file"
            else:
                yield member.name, member.size, False, "link or special file"

    def read(self, name: str, limit: int) -> bytes:
        with self._open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidModel(f"{name!r} is larger than protobuf's 2 GB limit for the graph")
        return data

    def copy(self, name: str, size: int, out: IO[bytes]) -> None:
        """Exactly `size` bytes: an entry whose content runs past its declared size (a zip
        bomb's trick) is refused, not extracted."""
        with self._open(name) as f:
            shutil.copyfileobj(_Limited(f, size), out, 1 << 20)
            if f.read(1):
                raise InvalidModel(f"archive entry {name!r} holds more than its declared size")

    def _open(self, name: str) -> IO[bytes]:
        if self.zip is not None:
            original = next(i for i in self.zip.infolist() if _normalised(i.filename) == name)
            return self.zip.open(original)
        assert self.tar is not None
        member = next(
            m for m in self.tar.getmembers() if m.isfile() and _normalised(m.name) == name
        )
        handle = self.tar.extractfile(member)
        assert handle is not None  # a regular member
        return handle


class _Limited:
    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream, self.left = stream, limit

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        chunk = self.stream.read(self.left if size < 0 else min(size, self.left))
        self.left -= len(chunk)
        return chunk
