"""A real S3 endpoint for tests: moto's standalone server (`python -m moto.server`) on a free
port, started once per test session, with a fresh bucket per test.

Nothing is patched in the test process: the blob store and Shears' own processes reach it
over HTTP with boto3, as they would reach MinIO or AWS.
"""

import atexit
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3

from tests.support.processes import REPO_ROOT, free_port, port_open

STARTUP_TIMEOUT_S = 60.0
# moto accepts any credentials; boto3 needs some, and a region, to sign requests.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "shears-test",
    "AWS_SECRET_ACCESS_KEY": "shears-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self) -> Any:
        return _client(self.endpoint_url)

    def new_bucket(self) -> str:
        name = f"shears-test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        """Every object key in `bucket`, in order."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def settings(self, bucket: str, prefix: str = "blobs") -> dict[str, str]:
        """`shears_env(**...)` keyword arguments and AWS variables for a Shears process."""
        return {"blob_url": f"s3://{bucket}/{prefix}", "s3_endpoint_url": self.endpoint_url}


@cache
def _client(endpoint_url: str) -> Any:
    # One per server: building a client loads botocore's S3 model, a second or so each time.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
    )


@cache
def s3_server() -> S3Server:
    """The session's server, started on first use and stopped when the tests exit."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="shears-test-moto-", suffix=".log")[1])
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    atexit.register(_stop, popen)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not port_open(port):
        if popen.poll() is not None or time.monotonic() > deadline:
            _stop(popen)
            raise AssertionError(f"moto.server did not listen on {port}:\n{log.read_text()}")
        time.sleep(0.1)
    return S3Server(endpoint_url=f"http://127.0.0.1:{port}")


def _stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
