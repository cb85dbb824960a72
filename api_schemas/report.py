"""The report of a finished job. Every figure is measured on, or computed from, the artifacts.

Core fields are typed so generated clients can rely on them; the engine may add more (each
block allows extra keys), which pass through unchanged.
"""

from pydantic import BaseModel, ConfigDict

_OPEN = ConfigDict(extra="allow")


class LayerSparsity(BaseModel):
    model_config = _OPEN
    name: str
    shape: list[int]
    parameters: int
    nonzeros: int
    sparsity: float


class SparsityReport(BaseModel):
    model_config = _OPEN
    target: float
    achieved: float
    layers: list[LayerSparsity]


class StorageReport(BaseModel):
    model_config = _OPEN
    dense_bytes: int
    formats: dict[str, int]


class Percentiles(BaseModel):
    model_config = _OPEN
    p50: float
    p95: float


class LatencyResult(BaseModel):
    model_config = _OPEN
    batch_size: int
    dense_ms: Percentiles
    pruned_ms: Percentiles
    speedup: float


class LatencyReport(BaseModel):
    model_config = _OPEN
    runtime: str
    threads: int
    results: list[LatencyResult]


class Fidelity(BaseModel):
    model_config = _OPEN
    output_cosine: float
    max_abs_diff: float
    top1_agreement: float | None


class MetricReport(BaseModel):
    model_config = _OPEN
    name: str
    dataset_id: str
    dense: float
    pruned: float


class QualityReport(BaseModel):
    model_config = _OPEN
    fidelity: Fidelity
    metric: MetricReport | None = None


class Timings(BaseModel):
    model_config = _OPEN
    load_s: float
    prune_s: float
    retrain_s: float
    benchmark_s: float


class Report(BaseModel):
    model_config = _OPEN
    sparsity: SparsityReport
    storage: StorageReport
    latency: LatencyReport
    quality: QualityReport
    timings: Timings
