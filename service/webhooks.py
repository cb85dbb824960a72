"""Sends owed webhooks: runs in the API process next to the reconciler, draining the outbox.

A job's final status and its delivery row are written in one transaction (storage/webhooks.py),
so whatever crashes, the delivery stays owed until a receiver answers 2xx. Each delivery is
claimed under a lease, so several API replicas never send it twice at once; a dispatcher that
dies mid-attempt leaves a lease that expires, and another sends it again with the same
`webhook-id` (receivers de-duplicate on it, as the spec advises).

Retries: exponential backoff with jitter from `webhook_backoff_s`, a `Retry-After` answer
honoured, up to `webhook_max_attempts`; a 410 Gone, or a URL that now resolves to a refused
address, ends the delivery as `failed` at once.
"""

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from fastapi.concurrency import run_in_threadpool

from api_schemas import JobWebhook
from api_schemas.webhooks import signature
from service.callback_urls import CallbackEndpoint, CallbackRefused, CallbackUnresolvable, resolve
from service.representations import job_view
from service.secret_box import SecretBox, SecretKeyError
from shears_config import Settings
from storage import DeliveryRecord, JobStore, NotFound
from storage.database import utcnow

log = logging.getLogger("shears.webhooks")

USER_AGENT = "shears/1.0.0"
# Multiples of the first delay: 5 s, 30 s, 2 min, 10 min, 30 min, then 1 h with the default.
BACKOFF_STEPS = (1, 6, 24, 120, 360, 720)
JITTER = 0.2
MAX_RETRY_AFTER_S = 3600.0
CONCURRENT_DELIVERIES = 4


@dataclass(frozen=True)
class AttemptResult:
    delivered: bool
    error: str | None = None
    final: bool = False  # no retry: the receiver said 410 Gone, or the URL is refused
    retry_after_s: float | None = None


def backoff_s(attempts_made: int, first_s: float, rng: random.Random) -> float:
    """The wait after the `attempts_made`-th failed attempt (1-based), jittered by ±20%."""
    step = BACKOFF_STEPS[min(attempts_made, len(BACKOFF_STEPS)) - 1]
    return first_s * step * rng.uniform(1 - JITTER, 1 + JITTER)


class WebhookDispatcher:
    def __init__(self, store: JobStore, settings: Settings, secrets: SecretBox) -> None:
        self.store = store
        self.secrets = secrets
        self.webhooks = store.webhooks
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Long enough for a resolve and a POST that uses its whole timeout.
        self.lease_s = 2 * settings.webhook_timeout_s + 30.0
        self.rng = random.Random()

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.webhook_poll_interval_s)
            await asyncio.gather(*(self._drain() for _ in range(CONCURRENT_DELIVERIES)))

    async def _drain(self) -> None:
        while True:
            try:
                if not await run_in_threadpool(self.deliver_next):
                    return
            except Exception:  # a bad delivery must not end dispatching for good
                log.exception("webhook dispatch failed")
                return

    def deliver_next(self) -> bool:
        """Claim one due delivery and make one attempt; False when none is due."""
        delivery = self.webhooks.claim_due(self.owner, self.lease_s)
        if delivery is None:
            return False
        body = delivery.body if delivery.body is not None else self._render(delivery)
        if body is None:
            return True
        result = self._attempt(delivery, body.encode())
        self._record(delivery, result)
        return True

    def _render(self, delivery: DeliveryRecord) -> str | None:
        """The body, built once from the job as it ended and kept for every retry."""
        try:
            job = self.store.get_job(None, delivery.job_id)
        except NotFound:
            self.webhooks.attempt_failed(delivery, "the job no longer exists", retry_at=None)
            return None
        callback = self.webhooks.callbacks_for([job.id]).get(job.id)
        event = JobWebhook.model_validate(
            {
                "type": delivery.event_type,
                "timestamp": delivery.event_at,
                "data": job_view(job, callback),
            }
        )
        body = event.model_dump_json()
        self.webhooks.set_body(delivery, body)
        return body

    def _attempt(self, delivery: DeliveryRecord, body: bytes) -> AttemptResult:
        try:
            endpoint = resolve(delivery.url, self.settings.webhook_allow_private)
        except CallbackUnresolvable as exc:
            return AttemptResult(delivered=False, error=str(exc))
        except CallbackRefused as exc:
            return AttemptResult(delivered=False, error=f"refused: {exc}", final=True)
        try:
            response = self._post(endpoint, delivery, body)
        except httpx.HTTPError as exc:
            return AttemptResult(delivered=False, error=f"{type(exc).__name__}: {exc}")
        except SecretKeyError as exc:  # retried: the operator may put the key back
            log.error("webhook %s: %s", delivery.id, exc)
            return AttemptResult(delivered=False, error=str(exc))
        return _judge(response)

    def _post(
        self, endpoint: CallbackEndpoint, delivery: DeliveryRecord, body: bytes
    ) -> httpx.Response:
        """POST to the address that passed the check, naming the host in Host and SNI."""
        url = httpx.URL(delivery.url)
        pinned = url.copy_with(host=str(endpoint.address), port=endpoint.port)
        timestamp = int(time.time())
        headers = {
            "host": url.netloc.decode("ascii"),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(
                self.secrets.open(delivery.secret), delivery.id, timestamp, body
            ),
        }
        extensions = {"sni_hostname": endpoint.host} if endpoint.scheme == "https" else {}
        # trust_env=False: a proxy from the environment would defeat the address check.
        with httpx.Client(
            timeout=self.settings.webhook_timeout_s, follow_redirects=False, trust_env=False
        ) as client:
            return client.post(pinned, content=body, headers=headers, extensions=extensions)

    def _record(self, delivery: DeliveryRecord, result: AttemptResult) -> None:
        if result.delivered:
            self.webhooks.delivered(delivery)
            log.info("webhook %s of job %s delivered", delivery.id, delivery.job_id)
            return
        error = result.error or "failed"
        retry_at = None if result.final else self._retry_at(delivery.attempts + 1, result)
        self.webhooks.attempt_failed(delivery, error, retry_at)
        outcome = "given up" if retry_at is None else f"retry at {retry_at.isoformat()}"
        log.warning(
            "webhook %s of job %s attempt %d failed (%s); %s",
            delivery.id,
            delivery.job_id,
            delivery.attempts + 1,
            error,
            outcome,
        )

    def _retry_at(self, attempts_made: int, result: AttemptResult) -> datetime | None:
        if attempts_made >= self.settings.webhook_max_attempts:
            return None
        delay = backoff_s(attempts_made, self.settings.webhook_backoff_s, self.rng)
        if result.retry_after_s is not None:
            delay = max(delay, min(result.retry_after_s, MAX_RETRY_AFTER_S))
        return utcnow() + timedelta(seconds=delay)


def _judge(response: httpx.Response) -> AttemptResult:
    """2xx delivers; 410 Gone stops for good; anything else (3xx included) is retried."""
    if response.is_success:
        return AttemptResult(delivered=True)
    error = f"HTTP {response.status_code} from the receiver"
    if response.status_code == 410:
        return AttemptResult(delivered=False, error=error, final=True)
    return AttemptResult(
        delivered=False, error=error, retry_after_s=_seconds(response.headers.get("retry-after"))
    )


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: the backoff alone decides
        return None
