"""Job metrics from the job store, aggregated in SQL at scrape time.

The API and the workers are separate processes, maybe several replicas of each: counters in
one process would see only its own share, so everything about jobs comes from the store.
Every label here comes from a closed set: statuses, the error codes below, stage names
checked when they were written (storage/stage_times.py).
"""

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from storage.database import Database, job_run_times, job_stage_times, jobs

# Upper bounds (seconds) of the job and stage duration histograms; a row's `bucket` is its
# index here (len(BUCKETS_S) for +Inf), so changing them means clearing those two tables.
BUCKETS_S: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0
)  # fmt: skip

# Every `JobError.code` a job may end with: the engine's (pruning/errors.py), the worker's
# (worker/protocol.py) and the store's own `worker_lost`. The worker maps any other code a
# child writes to `internal_error`; /metrics counts anything else as `other`.
JOB_ERROR_CODES: frozenset[str] = frozenset(
    {
        "engine_error",
        "invalid_model",
        "unsupported_model",
        "unsupported_operator",
        "invalid_spec",
        "unsupported",
        "layer_pattern_unmatched",
        "data_mismatch",
        "timeout",
        "resource_exhausted",
        "internal_error",
        "worker_lost",
    }
)
OTHER_CODE = "other"


def bucket_of(seconds: float) -> int:
    """Index of the smallest bound >= seconds (Prometheus buckets are `le`)."""
    return bisect_left(BUCKETS_S, seconds)


@dataclass
class Histogram:
    """Counts per bucket (not cumulative; the last is +Inf) and the sum of observations."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    total: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[int]:
        running, out = 0, []
        for n in self.counts:
            running += n
            out.append(running)
        return out


@dataclass(frozen=True)
class JobMetrics:
    by_status: Mapping[str, int]
    failed_by_code: Mapping[str, int]
    stage_seconds: Mapping[str, Histogram]
    run_seconds: Mapping[str, Histogram]


def job_metrics(db: Database) -> JobMetrics:
    """Four grouped queries, each on an index: fast on a store of many thousand jobs."""
    by_status = sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
    by_code = (
        sa.select(jobs.c.error_code, sa.func.count())
        .where(jobs.c.status == "failed")
        .group_by(jobs.c.error_code)
    )
    with db.engine.connect() as conn:
        statuses = {str(s): int(n) for s, n in conn.execute(by_status).all()}
        codes: dict[str, int] = {}
        for code, n in conn.execute(by_code).all():
            label = code if code in JOB_ERROR_CODES else OTHER_CODE
            codes[label] = codes.get(label, 0) + int(n)
        stages = _histograms(conn, job_stage_times, job_stage_times.c.stage)
        runs = _histograms(conn, job_run_times, job_run_times.c.status)
    return JobMetrics(statuses, codes, stages, runs)


def _histograms(
    conn: sa.Connection, table: sa.Table, label: sa.Column[str]
) -> dict[str, Histogram]:
    query = sa.select(
        label, table.c.bucket, sa.func.count(), sa.func.sum(table.c.seconds)
    ).group_by(label, table.c.bucket)
    histograms: dict[str, Histogram] = {}
    for name, bucket, n, seconds in conn.execute(query).all():
        histogram = histograms.setdefault(str(name), Histogram())
        histogram.counts[min(max(int(bucket), 0), len(BUCKETS_S))] += int(n)
        histogram.total += float(seconds or 0.0)
    return histograms
