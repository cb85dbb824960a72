"""Messages waiting in the broker, per queue: what the workers have not taken yet.

Asked through kombu's passive queue declare, which counts the way the transport stores
messages: on Redis the LLEN of the queue's list plus its priority lists (`<queue>\\x06\\x16<n>`,
kombu/transport/redis.py `_size`), on the filesystem transport the queue's message files in
its data folder. A queue that was never declared, or is empty on Redis (kombu deletes the
list), reports 0. A broker that does not answer gives None: /metrics then leaves the depth
out and says `shears_queue_depth_up 0`, rather than failing the scrape.
"""

import logging
from collections.abc import Sequence

import redis.exceptions
from kombu.exceptions import ChannelError, KombuError

from service.tasks import TaskSender

log = logging.getLogger("shears.metrics")
_BROKER_ERRORS = (KombuError, OSError, redis.exceptions.RedisError)
_ACQUIRE_TIMEOUT_S = 2.0


def queue_depths(tasks: TaskSender, queues: Sequence[str]) -> dict[str, int] | None:
    try:
        with tasks.celery.pool.acquire(block=True, timeout=_ACQUIRE_TIMEOUT_S) as conn:
            channel = conn.default_channel
            return {queue: _depth(channel, queue) for queue in queues}
    except _BROKER_ERRORS as exc:
        log.warning("metrics: broker unavailable for queue depth: %s", type(exc).__name__)
        return None


def _depth(channel: object, queue: str) -> int:
    try:
        declared = channel.queue_declare(queue=queue, passive=True)  # type: ignore[attr-defined]
    except ChannelError:  # never declared, or an empty Redis list (no key)
        return 0
    return int(declared.message_count)
