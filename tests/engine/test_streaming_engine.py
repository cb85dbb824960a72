"""The streaming engine (pruning/streaming) prunes data-free one-shot ONNX jobs tensor by
tensor from disk: the same masks and report figures as the in-memory engine, the input's
layout kept, and Python memory far below the model's size."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pruning import EngineError, engine, inspect_model, prune
from pruning.formats import decode_sparse_npz
from pruning.masks.cut import apply_cut, apply_cut_to_piece
from pruning.masks.kth import KSmallest
from pruning.methods import make_scorer
from pruning.streaming import graph as graph_module
from pruning.streaming import layout as layout_module
from pruning.streaming import mapped as mapped_module
from pruning.streaming import rewrite as rewrite_module
from pruning.streaming.layout import Region, read_layout
from pruning.tensors import WeightTensor
from shears_methods import METHODS
from tests.engine.factories import export_onnx, fast_spec, make_mlp
from tests.engine.test_onnx_archives import external_folder, tarred, zipped


def blocks_model(path: Path, width: int, blocks: int, external: bool = False) -> Path:
    """Transformer-shaped MatMul blocks (d x 4d up, 4d x d down, ReLU, residual) with a bias
    that is not pruned, written by onnx.helper."""
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for b in range(blocks):
        up, down, bias = f"blocks.{b}.up.weight", f"blocks.{b}.down.weight", f"blocks.{b}.bias"
        for name, shape in ((up, (width, 4 * width)), (down, (4 * width, width))):
            values = rng.standard_normal(shape, dtype=np.float32) * 0.02
            inits.append(numpy_helper.from_array(values, name))
        inits.append(numpy_helper.from_array(np.zeros(4 * width, np.float32) + 0.01, bias))
        nodes += [
            helper.make_node("MatMul", [x, up], [f"h{b}"], name=f"/blocks.{b}/up/MatMul"),
            helper.make_node("Add", [f"h{b}", bias], [f"hb{b}"], name=f"/blocks.{b}/Add0"),
            helper.make_node("Relu", [f"hb{b}"], [f"r{b}"], name=f"/blocks.{b}/Relu"),
            helper.make_node("MatMul", [f"r{b}", down], [f"y{b}"], name=f"/blocks.{b}/down/MatMul"),
            helper.make_node("Add", [x, f"y{b}"], [f"z{b}"], name=f"/blocks.{b}/Add"),
        ]
        x = f"z{b}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", width]) for n in "xy"]
    graph = helper.make_graph(nodes, "blocks", io[:1], io[1:], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    location = f"{path.name}.data" if external else None
    onnx.save_model(model, str(path), save_as_external_data=external, location=location)
    return path


def in_memory(model: Path, spec: dict[str, Any], out: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The same job through the in-memory engine (the streaming one declines every job)."""
    with monkeypatch.context() as patched:
        patched.setattr(engine, "prune_streamed", lambda *_, **__: None)
        return prune(model, spec, out)


def weights(path: Path) -> dict[str, np.ndarray]:
    proto = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}


def unpacked(archive: Path, dest: Path) -> Path:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    else:
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    return next(dest.rglob("*.onnx"))


def comparable(report: dict[str, Any], archive: bool = False) -> dict[str, Any]:
    """The report without what differs from run to run (times, latency samples), and the
    compressed sizes of the model file: the in-memory engine writes the initializers after
    the graph's other fields, the streaming one keeps the upload's byte order, so the same
    bytes deflate a few bytes apart. In an archive the in-memory engine also renames the
    data file (model.onnx.data) where the streaming one keeps the upload's names."""
    kept = {k: v for k, v in report.items() if k not in ("timings", "latency")}
    storage = dict(kept["storage"])
    for key in ("formats", "ratios", "obtained", "method"):
        storage[key] = {
            k: v
            for k, v in storage[key].items()
            if not k.startswith("file_") and not (archive and k == "file")
        }
    kept["storage"] = storage
    return kept


SPECS = [
    {"method": {"name": "magnitude"}, "sparsity": 0.5, "scope": "global"},
    {"method": {"name": "magnitude"}, "sparsity": 0.7, "scope": "layerwise"},
    {"method": {"name": "random", "seed": 3}, "sparsity": 0.6, "scope": "global"},
    {
        "method": {"name": "magnitude"},
        "sparsity": 0.5,
        "layers": {"overrides": {"*down*": 0.9}},
        "outputs": ["model", "sparse_npz"],
    },
]


@pytest.mark.parametrize("spec", SPECS, ids=["global", "layerwise", "random", "overrides+npz"])
def test_streamed_job_gives_the_in_memory_engines_masks_and_report(
    spec: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = blocks_model(tmp_path / "blocks.onnx", 32, 3)
    spec = fast_spec(**spec)
    streamed = prune(model, spec, tmp_path / "streamed")
    reference = in_memory(model, spec, tmp_path / "memory", monkeypatch)
    got, want = weights(streamed.artifacts["model"]), weights(reference.artifacts["model"])
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert comparable(streamed.report) == comparable(reference.report)
    assert streamed.report["timings"].keys() == reference.report["timings"].keys()
    if "sparse_npz" in spec.get("outputs", ()):
        a = decode_sparse_npz(streamed.artifacts["sparse_npz"])
        b = decode_sparse_npz(reference.artifacts["sparse_npz"])
        assert a.keys() == b.keys()
        for name in b:
            np.testing.assert_array_equal(a[name], b[name])


def test_streamed_job_on_a_torch_export_matches_the_in_memory_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = export_onnx(make_mlp(), tmp_path / "mlp.onnx")
    spec = fast_spec(sparsity=0.8)
    streamed = prune(model, spec, tmp_path / "streamed")
    reference = in_memory(model, spec, tmp_path / "memory", monkeypatch)
    assert comparable(streamed.report) == comparable(reference.report)
    assert weights(streamed.artifacts["model"]).keys() == weights(model).keys()


@pytest.mark.parametrize("pack", [zipped, tarred], ids=["zip", "tar"])
def test_an_archive_is_streamed_back_into_the_same_archive_kind(
    pack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = pack(external_folder(tmp_path, "model"), tmp_path / "upload")
    spec = fast_spec(sparsity=0.5, outputs=["model", "sparse_npz"])
    streamed = prune(archive, spec, tmp_path / "streamed")
    reference = in_memory(archive, spec, tmp_path / "memory", monkeypatch)
    delivered = streamed.artifacts["model"]
    assert (zipfile.is_zipfile if pack is zipped else tarfile.is_tarfile)(delivered)
    onnx_file = unpacked(delivered, tmp_path / "back")
    ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    ref_file = unpacked(reference.artifacts["model"], tmp_path / "ref")
    got, want = weights(onnx_file), weights(ref_file)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert comparable(streamed.report, archive=True) == comparable(reference.report, True)


def test_a_single_file_stays_one_file_of_the_same_size(tmp_path: Path) -> None:
    model = blocks_model(tmp_path / "blocks.onnx", 32, 2)
    result = prune(model, fast_spec(sparsity=0.5), tmp_path / "out")
    artifact = result.artifacts["model"]
    assert artifact.suffix == ".onnx"
    assert artifact.stat().st_size == model.stat().st_size
    onnx.checker.check_model(str(artifact))
    assert not any(p.name.endswith(".data") for p in artifact.parent.iterdir())


def test_the_graph_is_read_without_its_weights(tmp_path: Path) -> None:
    model = blocks_model(tmp_path / "blocks.onnx", 64, 2)
    layout = read_layout(model, allow_external=False)
    assert layout.skeleton.ByteSize() < layout_module.INLINE_BYTES * 8
    region = layout.regions["blocks.1.down.weight"]
    assert (region.shape, region.nbytes) == ((256, 64), 256 * 64 * 4)
    with model.open("rb") as f:
        f.seek(region.offset)
        raw = np.frombuffer(f.read(region.nbytes), np.float32).reshape(region.shape)
    np.testing.assert_array_equal(raw, weights(model)["blocks.1.down.weight"])


def test_streamed_pass_holds_far_less_python_memory_than_the_model(tmp_path: Path) -> None:
    (tmp_path / "layout").mkdir()
    model = blocks_model(tmp_path / "layout" / "blocks.onnx", 1024, 2, external=True)  # 64 MiB
    archive = zipped(model.parent, tmp_path / "upload.zip")
    size = sum(p.stat().st_size for p in model.parent.iterdir())
    assert size > 64 * 1024**2
    spec = {"method": {"name": "magnitude"}, "sparsity": 0.5, "latency": None}
    tracemalloc.start()
    try:
        prune(archive, spec, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 4, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB model"
    assert model.exists()


def test_above_the_measure_budget_the_job_succeeds_and_says_not_measured(tmp_path: Path) -> None:
    model = blocks_model(tmp_path / "blocks.onnx", 32, 2)
    result = prune(model, fast_spec(sparsity=0.5), tmp_path / "out", measure_bytes=1024)
    latency, fidelity = result.report["latency"], result.report["quality"]["fidelity"]
    assert latency["measured"] is False and latency["results"] == []
    assert "SHEARS_MEASURE_MEMORY_BYTES" in latency["reason"]
    assert fidelity["measured"] is False and fidelity["output_cosine"] is None
    assert "not measured" in fidelity["reason"]
    assert result.report["sparsity"]["achieved"] == pytest.approx(0.5)
    assert "not measured" in result.artifacts["report_html"].read_text()


def test_inspection_reads_the_graph_without_loading_weights(tmp_path: Path) -> None:
    model = blocks_model(tmp_path / "blocks.onnx", 32, 2)
    info = inspect_model(model, measure_bytes=1024)  # too large to probe in ONNX Runtime
    assert [p["name"] for p in info["prunable"]] == [
        "blocks.0.up.weight",
        "blocks.0.down.weight",
        "blocks.1.up.weight",
        "blocks.1.down.weight",
    ]
    assert info["parameters"] == 2 * (2 * 4 * 32 * 32 + 4 * 32)


@pytest.mark.parametrize("pack", [zipped, tarred], ids=["zip", "tar"])
def test_above_the_budget_an_archive_is_pruned_inside_a_copy_of_itself(
    pack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Named as the worker names every ONNX upload: the content says it is an archive.
    archive = pack(external_folder(tmp_path, "model"), tmp_path / "model.onnx")
    os.link(archive, tmp_path / "blob")  # placed as a hard link to the blob store
    spec = fast_spec(sparsity=0.5)
    info = inspect_model(archive, measure_bytes=1)  # checked inside the archive, not extracted
    assert [p["name"] for p in info["prunable"]] == ["0.weight", "2.weight"]
    streamed = prune(archive, spec, tmp_path / "streamed", measure_bytes=1)
    reference = in_memory(archive, spec, tmp_path / "memory", monkeypatch)
    delivered = streamed.artifacts["model"]
    assert delivered.suffix == (".zip" if pack is zipped else ".tar")
    assert delivered.stat().st_size == archive.stat().st_size  # the upload's own layout
    if pack is zipped:
        with zipfile.ZipFile(delivered) as z:
            assert z.testzip() is None  # every changed member's CRC-32 was resealed
    got = weights(unpacked(delivered, tmp_path / "back"))
    want = weights(unpacked(reference.artifacts["model"], tmp_path / "ref"))
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert streamed.report["sparsity"] == reference.report["sparsity"]


def test_a_deflated_zip_above_the_budget_is_extracted_and_still_pruned(tmp_path: Path) -> None:
    folder = external_folder(tmp_path, "model")
    archive = tmp_path / "deflated.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder).as_posix())
    result = prune(archive, fast_spec(sparsity=0.5), tmp_path / "out", measure_bytes=1)
    got = weights(unpacked(result.artifacts["model"], tmp_path / "back"))
    assert result.report["sparsity"]["achieved"] == pytest.approx(0.5, abs=0.01)
    assert got


def test_a_large_single_file_is_checked_through_its_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph_module, "_CHECK_WHOLE_BYTES", 0)  # every file counts as large
    model = blocks_model(tmp_path / "blocks.onnx", 64, 2)
    assert len(inspect_model(model, measure_bytes=1024)["prunable"]) == 4
    linked = tmp_path / "linked" / "model.onnx"  # as a worker places it: a hard link
    linked.parent.mkdir()
    os.link(model, linked)
    assert len(inspect_model(linked, measure_bytes=1024)["prunable"]) == 4
    linked.unlink()
    linked.parent.rmdir()
    broken = onnx.load(str(model))
    broken.graph.node[0].op_type = "NoSuchOp"
    onnx.save_model(broken, str(tmp_path / "broken.onnx"))
    with pytest.raises(EngineError, match="ONNX checker rejects"):
        inspect_model(tmp_path / "broken.onnx", measure_bytes=1024)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.onnx", "broken.onnx"]


@pytest.mark.parametrize("method", ["magnitude", "random"])
def test_pruning_piece_by_piece_gives_the_whole_tensors_zeros_ties_included(method: str) -> None:
    rng = np.random.default_rng(3)
    values = rng.choice(np.array([-0.5, -0.25, 0.25, 0.5, 1.0], np.float32), size=10_000)  # ties
    scorer = make_scorer(method, METHODS[method].defaults())
    whole = WeightTensor("w", "MatMul", values.copy())
    cut = KSmallest([whole], scorer).cuts(4321)[0]
    assert cut.ties > 0
    apply_cut(whole, scorer, cut)
    pieces, ties = values.copy(), cut.ties
    source = WeightTensor("w", "MatMul", values.copy())
    for start in range(0, values.size, 999):  # ties straddle the pieces
        ties = apply_cut_to_piece(source, scorer, cut, start, pieces[start : start + 999], ties)
    assert ties == 0
    np.testing.assert_array_equal(pieces, whole.values)
    assert int(np.count_nonzero(pieces == 0)) == 4321


def test_the_output_is_written_in_one_pass_every_byte_observed_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rewrite_module, "PIECE", 64)  # ranges and gaps span many pieces
    source = tmp_path / "source.bin"
    data = np.arange(1000, dtype=np.float32)
    source.write_bytes(b"head" * 25 + data.tobytes() + b"tail" * 30)
    regions = [
        ("a", Region(source, 100, 1600, np.dtype("<f4"), (400,))),
        ("b", Region(source, 100 + 2000, 2000, np.dtype("<f4"), (500,))),
    ]
    seen: list[tuple[str, int, int]] = []

    def visit(name: str, start: int, piece: Any) -> None:
        seen.append((name, start, piece.size))
        piece *= -1

    digest, offsets = hashlib.sha256(), []

    def observe(offset: int, piece: memoryview) -> None:
        offsets.append(offset)
        digest.update(piece)

    rewrite_module.rewrite_file(source, tmp_path / "out.bin", regions, visit, [observe])
    written = (tmp_path / "out.bin").read_bytes()
    want = data.copy()
    want[:400] *= -1
    want[500:] *= -1
    assert written == b"head" * 25 + want.tobytes() + b"tail" * 30
    assert digest.hexdigest() == hashlib.sha256(written).hexdigest()
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert [s for n, s, _ in seen if n == "a"] == list(range(0, 400, 16))
    assert sum(size for n, _, size in seen if n == "b") == 500


@pytest.mark.parametrize("pack", [zipped, tarred], ids=["zip", "tar"])
@pytest.mark.parametrize("measure_bytes", [None, 1], ids=["extracted", "inside"])
def test_an_archive_gets_its_onnx_sparse_written_tensor_by_tensor(
    pack: Any, measure_bytes: int | None, tmp_path: Path
) -> None:
    archive = pack(external_folder(tmp_path, "model"), tmp_path / "upload.bin")
    spec = fast_spec(sparsity=0.9) | {"outputs": ["model", "onnx_sparse"]}
    result = prune(archive, spec, tmp_path / "out", measure_bytes=measure_bytes)
    sparse_archive = result.artifacts["onnx_sparse"]
    assert sparse_archive.suffix == (".zip" if pack is zipped else ".tar")
    note = result.report["storage"]["onnx_sparse"]
    assert note["sparse"] == ["0.weight", "2.weight"]  # 90% zeros: COO is smaller
    pruned = unpacked(result.artifacts["model"], tmp_path / "pruned")
    sparse = unpacked(sparse_archive, tmp_path / "sparse")
    proto = onnx.load(str(sparse), load_external_data=False)
    assert {s.values.name for s in proto.graph.sparse_initializer} == set(note["sparse"])
    x = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    want, got = (
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        for p in (pruned, sparse)
    )
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_the_selection_reads_each_weight_once_besides_its_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each whole read of a tensor is a read of the model from disk when it is larger than the
    # page cache: the NaN check, the dtypes and the counting pass share one.
    archive = tarred(external_folder(tmp_path, "model"), tmp_path / "upload.tar")
    whole: list[str] = []
    real = mapped_module.map_region

    def counted(region: Any, file: Any = None, writable: bool = False, sparse: bool = False) -> Any:
        if file is None and not sparse:
            whole.append(str(region.offset))
        return real(region, file, writable, sparse)

    monkeypatch.setattr(mapped_module, "map_region", counted)
    prune(archive, fast_spec(sparsity=0.5), tmp_path / "out", measure_bytes=1)
    assert len(whole) == 2 and len(set(whole)) == 2  # the MLP's two weights, once each
