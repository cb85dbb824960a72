"""Webhook tests: a real receiver on 127.0.0.1 (webhook_receiver.py) and real Shears
processes started with tests/support."""

from collections.abc import Iterator

import pytest
from webhook_receiver import Receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()
