"""The streaming engine asks the disk for what it reads next (``pruning.streaming.read_ahead``):
a sample's pages at once, a copy a step ahead, and the next tensor from a thread while one
is scored. Hints change the time only: the masks, the bytes written and the NaN check
stay the single-threaded pass's, and the thread ends with the pass."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pruning import prune
from pruning.errors import InvalidModel
from pruning.masks.cut import CHUNK
from tests.engine.factories import fast_spec
from tests.engine.test_onnx_archives import tarred
from tests.engine.test_streaming_engine import (
    blocks_model,
    in_memory,
    unpacked,
    weights,
)

WIDTH = 192  # each weight 192 x 768 = 147,456 elements: more than one slice (CHUNK)


def read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "read-ahead"]


@pytest.mark.parametrize("external", [False, True], ids=["single-file", "tar"])
def test_reading_ahead_leaves_the_masks_of_tensors_over_many_slices_as_they_were(
    external: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    model = blocks_model(folder / "blocks.onnx", WIDTH, 3, external=external)
    assert 2 * CHUNK > WIDTH * 4 * WIDTH > CHUNK
    upload = tarred(folder, tmp_path / "upload.tar") if external else model
    spec = fast_spec(method={"name": "magnitude"}, sparsity=0.5, scope="global")
    # measure_bytes=1: the tar is pruned where it lies, its tensors read through the window
    streamed = prune(upload, spec, tmp_path / "streamed", measure_bytes=1)
    reference = in_memory(upload, spec, tmp_path / "memory", monkeypatch)
    got, want = (
        weights(unpacked(r.artifacts["model"], tmp_path / n) if external else r.artifacts["model"])
        for r, n in ((streamed, "streamed-files"), (reference, "memory-files"))
    )
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert not read_ahead_threads()


def test_a_nan_past_the_first_slice_is_still_refused_and_reading_ahead_stops(
    tmp_path: Path,
) -> None:
    path = blocks_model(tmp_path / "blocks.onnx", WIDTH, 2)
    model = onnx.load(str(path))
    init = next(i for i in model.graph.initializer if i.name == "blocks.1.up.weight")
    values = numpy_helper.to_array(init).copy()
    values.reshape(-1)[CHUNK + 5] = np.nan  # in the tensor's second slice, not its first
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save_model(model, str(path))
    spec = fast_spec(method={"name": "magnitude"}, sparsity=0.5, scope="global")
    with pytest.raises(InvalidModel, match=r"'blocks\.1\.up\.weight' contains NaN"):
        prune(path, spec, tmp_path / "out", measure_bytes=1)
    assert not read_ahead_threads()
