"""Webhook signing secrets at rest: Fernet-encrypted in the job store, opened only to sign.

Keys come from `SHEARS_WEBHOOK_SECRET_KEYS` (comma-separated Fernet keys, newest first): the
newest seals, any of them opens, so a key is rotated without losing a pending delivery:
1. put a new key first (`shears webhook-secrets new-key`), keep the old one after it, restart
   the API replicas;
2. `shears webhook-secrets rotate` re-seals every stored secret with the new key;
3. drop the old key and restart.
Without the setting, one key is generated into `data_dir/webhook-secret.key` (mode 0600) on
first start: enough for `shears serve` and for replicas that share the data dir.

A stored value without the `fernet:` prefix is a secret written in clear by an earlier
release: it still opens, and `rotate` seals it.
"""

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shears_config import Settings
from storage import JobStore

PREFIX = "fernet:"
KEY_FILE = "webhook-secret.key"
log = logging.getLogger("shears.api")


class SecretKeyError(RuntimeError):
    """The configured keys cannot open a stored secret, or are not Fernet keys."""


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretKeyError("no webhook secret key configured")
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except ValueError as exc:
            raise SecretKeyError(
                "SHEARS_WEBHOOK_SECRET_KEYS holds a value that is not a Fernet key "
                "(32 url-safe base64-encoded bytes; `shears webhook-secrets new-key` makes one)"
            ) from exc

    def seal(self, secret: str) -> str:
        return PREFIX + self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # written in clear by an earlier release
        try:
            return self._fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError(
                "no configured webhook secret key opens this secret: a key it was sealed with "
                "was removed from SHEARS_WEBHOOK_SECRET_KEYS before `rotate` ran"
            ) from exc

    def reseal(self, stored: str) -> str:
        """Sealed with the newest key (a clear one is sealed for the first time)."""
        return self.seal(self.open(stored))


def secret_box(settings: Settings) -> SecretBox:
    configured = settings.webhook_secret_keys.get_secret_value()
    keys = [k for k in configured.split(",") if k.strip()]
    return SecretBox(keys or [_key_file(settings.data_dir / KEY_FILE)])


def _key_file(path: Path) -> str:
    """The generated key; created once, atomically, so replicas starting together agree."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    log.info("generated a webhook secret key in %s", path)
    return key


def rotate(store: JobStore, box: SecretBox) -> int:
    """Re-seal every stored callback secret with the newest key; returns how many."""
    count = 0
    for job_id, stored in store.webhooks.callback_secrets():
        store.webhooks.replace_callback_secret(job_id, stored, box.reseal(stored))
        count += 1
    return count


def webhook_secrets_command(args: list[str]) -> int:
    """`shears webhook-secrets new-key | rotate`."""
    if args == ["new-key"]:
        print(Fernet.generate_key().decode("ascii"))
        return 0
    if args == ["rotate"]:
        from shears_config import get_settings
        from storage import connect

        settings = get_settings()
        database = connect(settings.resolved_database_url)
        try:
            count = rotate(JobStore(database), secret_box(settings))
        except SecretKeyError as exc:
            print(f"shears webhook-secrets rotate: {exc}", file=sys.stderr)
            return 1
        finally:
            database.engine.dispose()
        print(f"re-sealed {count} webhook secret(s) with the newest key")
        return 0
    print("usage: shears webhook-secrets new-key | rotate", file=sys.stderr)
    return 2
