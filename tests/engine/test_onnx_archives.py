"""An ONNX model with external data comes as one .zip or .tar of the .onnx file and its data
files; it is pruned and goes back in the same kind of archive. Every tensor's location is
checked against the archive before anything is read, and an unsafe one is refused naming the
tensor."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pruning import EngineError, inspect_model, prune
from pruning.models import detect_format
from pruning.models.onnx_archive import unpack
from tests.engine.factories import export_onnx, export_torchscript, fast_spec, make_mlp


def external_folder(tmp_path: Path, subdir: str = "") -> Path:
    """The MLP saved as graph + one data file, as `onnx.save_model` writes it."""
    proto = onnx.load(str(export_onnx(make_mlp(), tmp_path / "plain.onnx")))
    folder = tmp_path / "layout"
    (folder / subdir).mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        proto,
        str(folder / subdir / "mlp.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="mlp.weights",
        size_threshold=0,
    )
    return folder


def zipped(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return out


def tarred(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.add(path, path.relative_to(folder).as_posix())
    return out


def with_location(folder: Path, location: str, **extra: str) -> Path:
    """The folder's model with every tensor pointing at `location` (an attack's shape)."""
    model_file = next(folder.rglob("*.onnx"))
    proto = onnx.load(str(model_file), load_external_data=False)
    for tensor in proto.graph.initializer:
        entries = {e.key: e.value for e in tensor.external_data}
        entries.update(location=location, **extra)
        del tensor.external_data[:]
        for key, value in entries.items():
            tensor.external_data.add(key=key, value=value)
    model_file.write_bytes(proto.SerializeToString())
    return folder


@pytest.mark.parametrize("pack", [zipped, tarred], ids=["zip", "tar"])
def test_an_archived_model_is_pruned_and_comes_back_in_the_same_archive_kind(
    pack: object, tmp_path: Path
) -> None:
    archive = pack(external_folder(tmp_path, "model"), tmp_path / "upload")  # type: ignore[operator]
    assert detect_format(archive) == "onnx"
    result = prune(archive, fast_spec(sparsity=0.5), tmp_path / "out")
    delivered = result.artifacts["model"]
    kind = "zip" if pack is zipped else "tar"
    assert delivered.suffix == f".{kind}"
    assert (zipfile.is_zipfile if kind == "zip" else tarfile.is_tarfile)(delivered)
    assert sorted(p.name for p in delivered.parent.glob("model*")) == [delivered.name]

    model_file = unpack(delivered, tmp_path / "check")
    weights = onnx.load(str(model_file))  # with its data file beside it
    inits = weights.graph.initializer
    prunable = [onnx.numpy_helper.to_array(t) for t in inits if len(t.dims) == 2]
    zeros = sum(int((w == 0).sum()) for w in prunable) / sum(w.size for w in prunable)
    assert zeros == pytest.approx(0.5, abs=0.01)
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.ones((2, 32), np.float32)})
    assert out.shape == (2, 10)
    report = result.report
    assert report["sparsity"]["achieved"] == pytest.approx(0.5, abs=0.01)
    sizes = report["storage"]["formats"]  # of the files shipped: archives, data included
    assert sizes["file"] == delivered.stat().st_size
    assert sizes["dense_file"] == archive.stat().st_size


def test_inspecting_an_archive_lists_the_prunable_weights(tmp_path: Path) -> None:
    info = inspect_model(zipped(external_folder(tmp_path), tmp_path / "m.zip"))
    assert info["format"] == "onnx"
    assert len(info["prunable"]) == 2


@pytest.mark.parametrize(
    ("location", "extra", "says"),
    [
        ("../outside.bin", {}, "outside the model's folder"),
        ("/etc/passwd", {}, "absolute path"),
        ("missing.bin", {}, "does not hold"),
        ("mlp.weights", {"offset": "0", "length": "999999999"}, "truncated or the offsets"),
        ("mlp.weights", {"offset": "-4"}, "offset"),
    ],
    ids=["traversal", "absolute", "missing", "past-the-end", "negative-offset"],
)
def test_an_unsafe_location_is_refused_naming_the_tensor(
    location: str, extra: dict[str, str], says: str, tmp_path: Path
) -> None:
    folder = with_location(external_folder(tmp_path), location, **extra)
    archive = zipped(folder, tmp_path / "bad.zip")
    with pytest.raises(EngineError, match=says) as caught:
        inspect_model(archive)
    assert caught.value.code == "invalid_model"
    assert "tensor '" in caught.value.message
    assert not (tmp_path / "outside.bin").exists()


def test_a_link_inside_a_tar_is_refused_before_anything_is_extracted(tmp_path: Path) -> None:
    archive = tarred(external_folder(tmp_path), tmp_path / "m.tar")
    with tarfile.open(archive, "a") as tar:
        link = tarfile.TarInfo("mlp.weights.link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(EngineError, match="link or special file"):
        unpack(archive, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_an_archive_with_two_models_or_an_escaping_entry_is_refused(tmp_path: Path) -> None:
    folder = external_folder(tmp_path)
    (folder / "second.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(EngineError, match="exactly one"):
        unpack(zipped(folder, tmp_path / "two.zip"), tmp_path / "a")
    escaping = tmp_path / "escaping.zip"
    with zipfile.ZipFile(escaping, "w") as archive:
        archive.writestr("m.onnx", b"")
        archive.writestr("../evil.bin", b"x")
    with pytest.raises(EngineError, match="escaping path"):
        unpack(escaping, tmp_path / "b")


def test_a_lone_onnx_file_with_external_data_is_refused_with_the_way_to_upload_it(
    tmp_path: Path,
) -> None:
    folder = external_folder(tmp_path)
    with pytest.raises(EngineError, match=r"as one \.zip or \.tar"):
        inspect_model(folder / "mlp.onnx")


def test_a_torchscript_archive_is_still_torchscript(tmp_path: Path) -> None:
    assert detect_format(export_torchscript(make_mlp(), tmp_path / "m.pt")) == "torchscript"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", b"no model here")
    (tmp_path / "other.zip").write_bytes(buffer.getvalue())
    assert detect_format(tmp_path / "other.zip") == "torchscript"  # the loader names the damage
