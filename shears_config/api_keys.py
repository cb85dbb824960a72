"""API keys at rest: only their SHA-256 digests are kept, in settings and in memory.

`SHEARS_API_KEYS` maps `sha256:<hex>` (what `shears keys new TENANT` prints) to a tenant. A
plain key is still accepted, but hashed the moment settings load, so the key itself never
reaches a repr, a log line or a traceback. A key is 256 random bits, so one unsalted
SHA-256 is enough: there is no dictionary to attack, unlike a password.
"""

import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Mapping

PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
KEY_BYTES = 32


def digest(key: str) -> str:
    """`sha256:<hex>` of a presented or configured key."""
    return PREFIX + hashlib.sha256(key.encode()).hexdigest()


def at_rest(entry: str) -> str:
    """A configured key as stored: a digest stays as it is, a plain key is hashed."""
    lowered = entry.strip().lower()
    return lowered if _DIGEST.fullmatch(lowered) else digest(entry)


def tenant_of(presented: str, keys: Mapping[str, str]) -> str | None:
    """The tenant of a presented key, comparing its digest with every configured one in
    constant time (no early exit that a client could time)."""
    wanted = digest(presented).encode()
    tenant = None
    for stored, owner in keys.items():
        if hmac.compare_digest(stored.encode(), wanted):
            tenant = owner
    return tenant


def keys_command(args: list[str]) -> int:
    """`shears keys new TENANT`: a fresh key for the client, its digest for the server."""
    if len(args) != 2 or args[0] != "new" or not args[1].strip():
        print("usage: shears keys new TENANT", file=sys.stderr)
        return 2
    key = "shk_" + secrets.token_urlsafe(KEY_BYTES)
    print(f"key (give it to the client; it is not stored anywhere): {key}")
    print(f'SHEARS_API_KEYS entry for the server: {{"{digest(key)}": "{args[1].strip()}"}}')
    return 0
