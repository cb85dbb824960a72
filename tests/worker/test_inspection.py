"""Validating an upload in a sandboxed child: the model row ends `ready` or `invalid`."""

import os
from pathlib import Path

from tests.support.processes import engine_children
from tests.worker.factories import add_model
from worker import protocol
from worker.context import WorkerContext
from worker.inspection import _record, inspect_model
from worker.protocol import ChildError


def test_onnx_upload_becomes_ready_with_its_signature(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    model = add_model(ctx, onnx_model_file)

    assert inspect_model(ctx, model.id) == "ready"

    row = ctx.store.get_model(None, model.id)
    assert (row.status, row.format, row.error) == ("ready", "onnx", None)
    assert row.info is not None
    assert [i["name"] for i in row.info["inputs"]] == ["x"]
    assert row.info["prunable"], "the MLP's two weight matrices are prunable"


def test_torchscript_upload_becomes_ready(ctx: WorkerContext, torchscript_model_file: Path) -> None:
    model = add_model(ctx, torchscript_model_file)

    assert inspect_model(ctx, model.id) == "ready"
    assert ctx.store.get_model(None, model.id).format == "torchscript"


def test_file_that_is_not_a_model_becomes_invalid_with_a_reason(
    ctx: WorkerContext, tmp_path: Path
) -> None:
    junk = tmp_path / "model.onnx"
    junk.write_bytes(os.urandom(4096))
    model = add_model(ctx, junk)

    assert inspect_model(ctx, model.id) == "invalid"

    row = ctx.store.get_model(None, model.id)
    assert row.status == "invalid"
    assert row.error
    assert engine_children(os.getpid()) == []


def test_second_delivery_of_an_inspected_model_changes_nothing(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    model = add_model(ctx, onnx_model_file)
    inspect_model(ctx, model.id)
    before = ctx.store.get_model(None, model.id)

    assert inspect_model(ctx, model.id) == "ready"
    assert ctx.store.get_model(None, model.id) == before


def test_inspection_over_its_time_limit_marks_the_model_invalid(
    make_ctx, onnx_model_file: Path
) -> None:
    ctx = make_ctx(inspect_time_limit_s=0.3)
    model = add_model(ctx, onnx_model_file)

    assert inspect_model(ctx, model.id) == "invalid"
    assert "too long" in (ctx.store.get_model(None, model.id).error or "")


def test_a_model_too_large_to_open_is_invalid_as_resource_exhausted_naming_the_setting(
    ctx: WorkerContext, onnx_model_file: Path
) -> None:
    model = add_model(ctx, onnx_model_file)
    ending = ChildError(protocol.RESOURCE_EXHAUSTED, "the job ran out of memory (limit 8.0 GiB)")

    assert _record(ctx, model.id, ending) == "invalid"

    row = ctx.store.get_model(None, model.id)
    assert row.error_code == "resource_exhausted"
    assert row.error is not None and "SHEARS_CHILD_MEMORY_BYTES" in row.error
