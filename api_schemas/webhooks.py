"""Webhooks: a job's callback target as the client gives it, and its delivery as it goes.

Deliveries follow the Standard Webhooks specification (https://www.standardwebhooks.com):
headers `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` over
`{webhook-id}.{webhook-timestamp}.{body}`, keyed by the base64-decoded part of the secret
after `whsec_`.
"""

import base64
import binascii
import hashlib
import hmac
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    UrlConstraints,
)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = (24, 64)  # the spec: at least 24 bytes (192 bits), at most 64 (512 bits)
MAKE_SECRET = (
    'python -c "import secrets,base64;'
    "print('whsec_'+base64.b64encode(secrets.token_bytes(32)).decode())\""
)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; ValueError (never echoing it) when malformed."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    if encoded == secret or not _BASE64.fullmatch(encoded):
        raise ValueError(
            f"must be {SECRET_PREFIX!r} followed by base64; make one with: {MAKE_SECRET}"
        )
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError("the part after 'whsec_' is not valid base64") from exc
    low, high = SECRET_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"must decode to {low}..{high} random bytes, not {len(key)}")
    return key


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: `v1,` and the base64 HMAC-SHA256 of
    `{webhook_id}.{timestamp}.{body}` (Standard Webhooks 1.0, "Signature scheme")."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _well_formed(secret: SecretStr) -> SecretStr:
    secret_key(secret.get_secret_value())
    return secret


CallbackUrl = Annotated[
    AnyHttpUrl,
    UrlConstraints(max_length=2048),
    Field(
        description="Where to POST a signed webhook when the job ends (succeeded, failed or "
        "cancelled): http or https, no credentials. Hosts that resolve to loopback, "
        "link-local, private, shared, multicast or reserved addresses are refused unless the "
        "server sets SHEARS_WEBHOOK_ALLOW_PRIVATE=true.",
        examples=["https://ci.example.com/hooks/shears"],
    ),
]

CallbackSecret = Annotated[
    SecretStr,
    AfterValidator(_well_formed),
    Field(
        description="Write-only, required with `callback_url`: the key that signs each "
        "delivery (Standard Webhooks, `v1` HMAC-SHA256): `whsec_` and the base64 of 24 to 64 "
        f"random bytes. Make one with: {MAKE_SECRET}. Never shown again by the API.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    ),
]


class CallbackState(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class WebhookEventType(StrEnum):
    succeeded = "job.succeeded"
    failed = "job.failed"
    cancelled = "job.cancelled"


class CallbackStatus(BaseModel):
    """Where the job's webhook stands."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "state": "pending",
                    "attempts": 2,
                    "last_error": "HTTP 503 from the receiver",
                    "next_attempt_at": "2026-11-25T08:01:35Z",
                    "delivered_at": None,
                },
                {
                    "state": "delivered",
                    "attempts": 1,
                    "last_error": None,
                    "next_attempt_at": None,
                    "delivered_at": "2026-11-25T08:01:02Z",
                },
            ]
        }
    )

    state: CallbackState = Field(
        description="`pending` until a receiver answers 2xx (`delivered`) or every attempt "
        "has failed, or the receiver answered 410 Gone (`failed`). A job that has not ended "
        "yet is `pending` with 0 attempts."
    )
    attempts: int = Field(ge=0, description="POSTs made so far.")
    last_error: str | None = Field(description="Why the last attempt failed; null otherwise.")
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due (only while `pending` and owed)."
    )
    delivered_at: datetime | None = Field(description="When a receiver answered 2xx.")
