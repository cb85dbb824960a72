"""How long a finished job spent in each stage, written in the transaction that finishes it.

Stages come from the final attempt's progress events (the engine's names: load, prune,
retrain, ...), plus `queued` (created until first claimed) and `starting` (claimed until the
engine's first event; first attempts only, as a later claim's time is not kept). A stage the
engine enters twice (iterative schedules) adds up. The names are the engine's, and the engine
runs sandboxed and untrusted: anything but a short snake_case word counts as `other`, so a
metric label never carries arbitrary text.
"""

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.database import job_events, job_run_times, job_stage_times, jobs
from storage.metrics import bucket_of

_STAGE_NAME = re.compile(r"[a-z_]{1,32}")
OTHER_STAGE = "other"
# The event that finish() writes names the final status; it ends the last stage.
_FINAL = frozenset({"succeeded", "failed", "cancelled"})


def stage_label(stage: str) -> str:
    return stage if _STAGE_NAME.fullmatch(stage) else OTHER_STAGE


def stage_seconds(
    created_at: datetime,
    started_at: datetime | None,
    first_attempt: bool,
    events: Sequence[tuple[str, datetime]],
    finished_at: datetime,
) -> dict[str, float]:
    """Seconds per stage label; a stage lasts from its first event until the next stage's
    first event, the last one until `finished_at`."""
    totals: dict[str, float] = {}
    if started_at is None:  # never claimed: nothing ran
        return totals
    _add(totals, "queued", created_at, started_at)
    spans = [("starting", started_at)] if first_attempt else []
    for stage, at in events:
        label = stage_label(stage)
        if stage not in _FINAL and (not spans or spans[-1][0] != label):
            spans.append((label, at))
    ends = [at for _, at in spans[1:]] + [finished_at] if spans else []
    for (label, begin), end in zip(spans, ends, strict=True):
        _add(totals, label, begin, end)
    return totals


def _add(totals: dict[str, float], stage: str, begin: datetime, end: datetime) -> None:
    totals[stage] = totals.get(stage, 0.0) + max((end - begin).total_seconds(), 0.0)


def record_job_times(conn: Connection, job_id: str, status: str, finished_at: datetime) -> None:
    """Called with the final status write, inside its transaction."""
    job = conn.execute(
        sa.select(jobs.c.created_at, jobs.c.started_at, jobs.c.attempt).where(jobs.c.id == job_id)
    ).one()
    events = conn.execute(
        sa.select(job_events.c.stage, job_events.c.at)
        .where(job_events.c.job_id == job_id, job_events.c.attempt == job.attempt)
        .order_by(job_events.c.id)
    ).all()
    stages = stage_seconds(
        job.created_at, job.started_at, job.attempt == 1, [tuple(e) for e in events], finished_at
    )
    _replace(conn, job_stage_times, job_id, [{"stage": k, "seconds": v} for k, v in stages.items()])
    if job.started_at is not None:
        run_s = max((finished_at - job.started_at).total_seconds(), 0.0)
        _replace(conn, job_run_times, job_id, [{"status": status, "seconds": run_s}])


def _replace(
    conn: Connection, table: sa.Table, job_id: str, rows: Iterable[dict[str, Any]]
) -> None:
    conn.execute(table.delete().where(table.c.job_id == job_id))
    values = [{**row, "job_id": job_id, "bucket": bucket_of(row["seconds"])} for row in rows]
    if values:
        conn.execute(table.insert(), values)
