"""Webhook signing secrets are sealed in the job store, never kept in clear, and a key is
rotated without losing a delivery that was owed before the rotation."""

import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from webhook_http import FAST_WEBHOOKS, create_job_with_callback
from webhook_receiver import Receiver, new_secret, signature_verifies

from service.secret_box import KEY_FILE, PREFIX, SecretBox, SecretKeyError, secret_box
from shears_config import Settings
from tests.support.api_client import upload_model, wait_for_model
from tests.support.processes import ProcessRegistry, python_argv
from tests.support.shears import shears_env, start_api, start_worker


def test_a_sealed_secret_opens_but_does_not_show_the_secret() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    sealed = box.seal("whsec_c2VjcmV0")
    assert sealed.startswith(PREFIX) and "whsec_c2VjcmV0" not in sealed
    assert box.open(sealed) == "whsec_c2VjcmV0"
    assert box.seal("whsec_c2VjcmV0") != sealed  # a fresh IV each time


def test_a_secret_written_in_clear_by_an_earlier_release_still_opens_and_reseals() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    assert box.open("whsec_old") == "whsec_old"
    assert box.open(box.reseal("whsec_old")) == "whsec_old"


def test_resealing_with_a_new_key_first_lets_the_old_key_go() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_by_old = SecretBox([old]).seal("whsec_x")
    both = SecretBox([new, old])
    assert both.open(sealed_by_old) == "whsec_x"  # pending deliveries keep working
    resealed = both.reseal(sealed_by_old)
    assert SecretBox([new]).open(resealed) == "whsec_x"
    with pytest.raises(SecretKeyError, match="before `rotate` ran"):
        SecretBox([new]).open(sealed_by_old)


def test_a_value_that_is_no_fernet_key_is_refused_with_how_to_make_one() -> None:
    with pytest.raises(SecretKeyError, match="webhook-secrets new-key"):
        SecretBox(["not-a-key"])


def test_without_configured_keys_one_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    sealed = secret_box(settings).seal("whsec_y")
    assert secret_box(settings).open(sealed) == "whsec_y"  # a restart reads the same key
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


def stored_secrets(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "shears.db") as conn:
        return [row[0] for row in conn.execute("SELECT secret FROM job_callbacks")]


@pytest.mark.integration
def test_a_delivery_owed_before_a_key_rotation_arrives_signed_after_it(
    processes: ProcessRegistry, receiver: Receiver, onnx_model_file: Path, tmp_path: Path
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    data = tmp_path / "data"
    # The dispatcher waits an hour before its first look: the delivery stays owed.
    settings = {**FAST_WEBHOOKS, "webhook_poll_interval_s": 3600}
    before = shears_env(data, **settings, webhook_secret_keys=old)
    start_worker(processes, before, queues=("shears.inspect",))  # jobs stay queued
    api = start_api(processes, before)
    secret = new_secret()
    with api.client() as http:
        model = upload_model(http, onnx_model_file)
        assert wait_for_model(http, model["id"])["status"] == "ready"
        job = create_job_with_callback(http, model["id"], receiver.url("/hook"), secret)
        assert http.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    api.process.stop()
    (sealed,) = stored_secrets(data)
    assert sealed.startswith(PREFIX) and secret not in sealed

    rotating = shears_env(data, webhook_secret_keys=f"{new},{old}")
    argv = python_argv("-m", "shears_cli", "webhook-secrets", "rotate")
    done = subprocess.run(argv, env=rotating, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "re-sealed 1 webhook secret" in done.stdout
    (resealed,) = stored_secrets(data)
    assert resealed != sealed

    after = shears_env(data, **FAST_WEBHOOKS, webhook_secret_keys=new)  # the old key is gone
    start_api(processes, after)
    (post,) = receiver.wait_for("/hook", 1)
    assert post.json()["data"]["id"] == job["id"]
    assert signature_verifies(secret, post)
