"""The log formats: one JSON object per line, carrying the ids of the work at hand."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from service.request_id import request_id_from
from shears_config.logging import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    log_context,
    tenant_ref,
)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Root logging into a buffer for the test; the handlers pytest had are put back."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_has_timestamp_level_logger_and_message(captured: io.StringIO) -> None:
    logging.getLogger("shears.test").info("job %s: %s", "job_1", "claimed")

    (line,) = _lines(captured)
    assert line["level"] == "info"
    assert line["logger"] == "shears.test"
    assert line["message"] == "job job_1: claimed"
    assert line["ts"].endswith("+00:00")


def test_ids_of_the_context_are_on_every_line_inside_it_and_gone_after(
    captured: io.StringIO,
) -> None:
    log = logging.getLogger("shears.test")
    with log_context(request_id="req-1", job_id="job_1"), log_context(attempt=2):
        log.info("inside")
    log.info("after")

    inside, after = _lines(captured)
    assert (inside["request_id"], inside["job_id"], inside["attempt"]) == ("req-1", "job_1", 2)
    assert not {"request_id", "job_id", "attempt"} & after.keys()


def test_an_exception_is_one_text_field_and_the_line_stays_one_line(
    captured: io.StringIO,
) -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logging.getLogger("shears.test").exception("it failed:\n%s", "details")

    (line,) = _lines(captured)  # json.loads of each physical line: one line in all
    assert line["message"] == "it failed:\ndetails"
    assert "ValueError: bad" in line["exc_info"] and "Traceback" in line["exc_info"]


def test_extra_fields_are_kept_and_unserializable_values_become_text(
    captured: io.StringIO,
) -> None:
    logging.getLogger("shears.access").info(
        "GET", extra={"route": "/v1/jobs/{job_id}", "status": 200, "when": object()}
    )

    (line,) = _lines(captured)
    assert (line["route"], line["status"]) == ("/v1/jobs/{job_id}", 200)
    assert line["when"].startswith("<object object")


def test_tenant_is_logged_as_a_digest_never_by_name() -> None:
    ref = tenant_ref("acme")
    assert ref != tenant_ref("globex") and "acme" not in ref and len(ref) == 12


def test_unknown_context_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="api_key"), log_context(api_key="secret"):
        pass


def test_text_format_puts_the_ids_at_the_end_of_the_line() -> None:
    record = logging.LogRecord("shears.test", logging.INFO, __file__, 1, "hello", None, None)
    with log_context(job_id="job_1", attempt=1):
        text = TextFormatter().format(record)
    assert text.endswith("shears.test: hello [job_id=job_1 attempt=1]")
    json_line = json.loads(JsonFormatter().format(record))
    assert "job_id" not in json_line


def test_configure_refuses_an_unknown_format_or_level() -> None:
    with pytest.raises(ValueError, match="format"):
        configure_logging("xml", "INFO", stream=io.StringIO())
    with pytest.raises(ValueError, match="level"):
        configure_logging("json", "LOUD", stream=io.StringIO())


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("build-42.retry_1", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("has space", False),
        ('quote"', False),
        ("line\nbreak", False),
        ("", False),
    ],
)
def test_a_client_request_id_is_kept_only_when_it_is_a_sane_token(header: str, kept: bool) -> None:
    scope = {"type": "http", "headers": [(b"x-request-id", header.encode())]}
    assert (request_id_from(scope) == header) is kept
    assert len(request_id_from({"type": "http", "headers": []})) == 32
