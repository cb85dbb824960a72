"""The Celery settings RELIABILITY.md asks for, read back from the configured app."""

import pytest

from shears_config import INSPECT_QUEUE, JOB_QUEUE, TASK_INSPECT_MODEL, TASK_RUN_JOB, Settings
from tests.support.redis_server import RedisServer
from worker.celery_app import celery_config, create_app


def _redis_settings(url: str, tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, broker_url=url, job_time_limit_s=7200)


@pytest.mark.integration
def test_redis_visibility_timeout_exceeds_every_hard_time_limit(
    redis_server: RedisServer, tmp_path
) -> None:
    app = create_app(_redis_settings(redis_server.url, tmp_path))

    with app.connection_for_write() as connection:
        # What kombu's Redis channel actually uses to restore unacked messages.
        visibility = connection.default_channel.visibility_timeout

    assert visibility > app.conf.task_time_limit
    assert visibility > app.tasks[TASK_INSPECT_MODEL].time_limit
    assert visibility != 3600, "kombu's 1-hour default was not overridden (celery#7651)"


def test_our_child_timeout_fires_before_celerys_soft_and_hard_limits(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, job_time_limit_s=100, inspect_time_limit_s=10)
    app = create_app(settings)

    assert settings.job_time_limit_s < app.conf.task_soft_time_limit < app.conf.task_time_limit
    inspect = app.tasks[TASK_INSPECT_MODEL]
    assert settings.inspect_time_limit_s < inspect.soft_time_limit < inspect.time_limit


def test_messages_are_json_acked_late_requeued_on_worker_loss_and_not_prefetched(
    tmp_path,
) -> None:
    conf = create_app(Settings(data_dir=tmp_path)).conf

    assert conf.task_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is True
    assert conf.worker_soft_shutdown_timeout > 0


def test_each_task_is_routed_to_its_own_queue(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path))

    for task, queue in ((TASK_RUN_JOB, JOB_QUEUE), (TASK_INSPECT_MODEL, INSPECT_QUEUE)):
        route = app.amqp.router.route({}, task)["queue"]
        assert (route.name, route.routing_key, route.exchange.name) == (queue, queue, queue)


def test_settings_whose_tasks_outlive_the_visibility_timeout_are_refused(tmp_path) -> None:
    # An inspection allowed to run longer than a job's visibility window would be delivered
    # twice; better to refuse to start.
    settings = Settings(
        data_dir=tmp_path,
        broker_url="redis://127.0.0.1:1/0",
        job_time_limit_s=100,
        inspect_time_limit_s=5000,
    )

    with pytest.raises(ValueError, match="visibility_timeout"):
        celery_config(settings)
