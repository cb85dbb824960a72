"""Queue depth on the embedded filesystem broker: message files waiting in its folder."""

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from test_observed_stack import parse_exposition

from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration


def test_a_message_no_worker_took_is_counted_in_its_queue(
    shears_env: Callable[..., dict[str, str]],
    start_api: Callable[[Mapping[str, str]], ApiServer],
    onnx_model_file: Path,
) -> None:
    # No worker runs: the upload's validation message waits in the inspect queue.
    api = start_api(shears_env(inspect_wait_s=0))
    with api.client() as http, onnx_model_file.open("rb") as f:
        upload = http.post("/v1/models", files={"file": ("mlp.onnx", f)})
        assert upload.status_code == 202, upload.text  # still validating: nobody took it
        families = parse_exposition(http.get("/metrics").text)

    assert families["shears_queue_depth_up"].value() == 1
    depth = families["shears_queue_depth"]
    assert depth.value(queue="shears.inspect") == 1
    assert depth.value(queue="shears.jobs") == 0
