"""Import by reference: `POST /v1/models` with a JSON body `{"source": "s3://bucket/key"}`.

MLOps pipelines already keep their models in object storage. The service fetches the object
with its own S3 credentials (boto3's usual sources: `AWS_ACCESS_KEY_ID`, ... or an instance
role; `SHEARS_S3_ENDPOINT_URL` for MinIO and other servers), streamed into the blob store's
staging as an upload is (hashed as it arrives, the size limit enforced, nothing in memory),
then validated like an upload. A source that cannot be read is a 422 naming `source` and what
S3 said; an object over the upload limit is a 413 and one the disk cannot hold a 507, both
before a byte is fetched.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from starlette.requests import Request

from service.problems import InsufficientStorage, Invalid, PayloadTooLarge, ProblemError
from service.uploads import Upload
from storage import BlobStore
from storage.blob_store import BlobTooLarge, StagingFull

JSON_TYPE = "application/json"
FIELDS = frozenset({"source", "name", "format"})
MAX_BODY_BYTES = 16 * 1024
_S3_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")
_UNREADABLE = {
    "NoSuchKey": "the bucket has no object with that key",
    "NoSuchBucket": "no such bucket",
    "404": "the bucket has no object with that key",
    "AccessDenied": "the service's S3 credentials may not read it",
    "403": "the service's S3 credentials may not read it",
}


def is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == JSON_TYPE


async def read_source_body(request: Request) -> dict[str, str]:
    """The JSON body's fields: `source` (required), `name` and `format` as in a form."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"a JSON model source is at most {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise Invalid("body", f"not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise Invalid("body", 'a JSON object {"source": "s3://bucket/key"} is expected')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise Invalid(unknown[0], f"unknown field; allowed: {', '.join(sorted(FIELDS))}")
    if not all(isinstance(v, str) for v in body.values()):
        raise Invalid("body", "every field must be a string")
    if "source" not in body:
        raise Invalid("source", 'required: the model\'s object, "s3://bucket/key"')
    return dict(body)


def fetch_source(source: str, blobs: BlobStore, max_bytes: int, endpoint_url: str | None) -> Upload:
    """Stream the object into the blob store; runs in a worker thread (boto3 blocks)."""
    bucket, key = _parse(source)
    client = _client(endpoint_url)
    size = _size(client, bucket, key, source)
    if size > max_bytes:
        raise PayloadTooLarge(f"{source} holds {size} bytes, above the limit of {max_bytes}")
    free = blobs.staging_free_bytes()
    if size > free:
        raise InsufficientStorage(f"{source} holds {size} bytes; the disk has {free} free")
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        raise _unreadable(source, exc) from exc
    try:
        blob = blobs.put_stream(body, max_bytes)
    except BlobTooLarge as exc:
        raise PayloadTooLarge(f"{source} is larger than the limit of {max_bytes}") from exc
    except StagingFull as exc:
        raise InsufficientStorage(f"fetching {source} filled the service's disk ({exc})") from exc
    except (BotoCoreError, ClientError) as exc:
        raise ProblemError(502, "source_unavailable", f"reading {source} broke off: {exc}") from exc
    finally:
        body.close()
    return Upload(blob=blob, filename=key.rsplit("/", 1)[-1], fields={})


def _parse(source: str) -> tuple[str, str]:
    found = _S3_URL.match(source)
    if found is None:
        raise Invalid(
            "source",
            f"{source[:200]!r} is not an S3 URL; give s3://bucket/key (the bucket's objects "
            "are read with the service's S3 credentials)",
        )
    return found["bucket"], found["key"]


def _client(endpoint_url: str | None) -> Any:
    import boto3  # the API imports it only for sources and S3 blobs

    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


def _size(client: Any, bucket: str, key: str, source: str) -> int:
    try:
        return int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as exc:
        raise _unreadable(source, exc) from exc
    except NoCredentialsError as exc:
        # Not an outage to retry: this deployment cannot import by reference at all. The
        # client can still upload the bytes; the operator can give the API credentials.
        raise Invalid(
            "source",
            f"this service has no S3 credentials, so it cannot fetch {source}; upload the "
            "file instead (operators: give the API AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or a role, and SHEARS_S3_ENDPOINT_URL for MinIO and others)",
            "invalid_source",
        ) from exc
    except BotoCoreError as exc:  # the endpoint does not answer
        raise ProblemError(502, "source_unavailable", f"cannot reach {source}: {exc}") from exc


def _unreadable(source: str, exc: ClientError) -> Invalid:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    reason = _UNREADABLE.get(code, f"S3 answered {code or 'an error'}")
    if code in ("404", "NoSuchKey"):
        reason = f"{reason} (or no such bucket)"
    return Invalid("source", f"{source} cannot be read: {reason}", "invalid_source")
