"""The `webhook-signature` Shears sends is the Standard Webhooks `v1` HMAC-SHA256, checked
against the specification's own reference vector and an independent verifier."""

import base64
import hashlib
import hmac

import pytest

from api_schemas.webhooks import secret_key, signature

# The test vector of the reference library (standard-webhooks, libraries/python,
# tests/test_webhooks.py::test_sign_function).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def verifies(secret: str, webhook_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """A receiver's check, written from the spec text alone."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    wanted = base64.b64encode(expected.digest()).decode()
    return any(
        hmac.compare_digest(sig.removeprefix("v1,"), wanted)
        for sig in header.split(" ")
        if sig.startswith("v1,")
    )


def test_signature_matches_the_reference_vector() -> None:
    assert signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_a_receiver_verifies_the_signature_and_rejects_a_changed_body() -> None:
    header = signature(SPEC_SECRET, "msg_1", 1700000000, b'{"a":1}')
    assert verifies(SPEC_SECRET, "msg_1", "1700000000", b'{"a":1}', header)
    assert not verifies(SPEC_SECRET, "msg_1", "1700000000", b'{"a":2}', header)
    assert not verifies(SPEC_SECRET, "msg_1", "1700000001", b'{"a":1}', header)


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no whsec_ prefix
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"x" * 16).decode(),  # 16 bytes: under the spec's 24
        "whsec_" + base64.b64encode(b"x" * 65).decode(),  # over 64
    ],
)
def test_malformed_secrets_are_refused_without_echoing_them(secret: str) -> None:
    with pytest.raises(ValueError) as refused:
        secret_key(secret)
    assert secret not in str(refused.value)
