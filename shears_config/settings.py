"""One typed settings object, read from `SHEARS_*` environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shears_config.api_keys import at_rest


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHEARS_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Job store, blobs, broker files.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite under data_dir."
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker URL (redis://…); default: the embedded filesystem transport "
        "under data_dir, which needs no server but serves one machine only.",
    )
    blob_url: str | None = Field(
        default=None,
        pattern=r"^s3://[^/?#]+(/[^?#]*)?$",
        description="s3://bucket/prefix: blobs in an S3-compatible bucket, so workers on other "
        "hosts need no shared disk (credentials and region from AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION or an instance role); default: files "
        "under data_dir/blobs.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The S3 server of blob_url when it is not AWS, e.g. http://minio:9000.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    api_workers: int | None = Field(
        default=None,
        ge=1,
        description="Processes of `shears api`, connections shared evenly among them "
        "(service/balance.py); default: one per core this process may use.",
    )

    max_upload_bytes: int = Field(
        default=32 * 1024**3,
        ge=1,
        description="Largest model or dataset upload: room for a 7B-parameter fp32 model "
        "(28 GB) in an archive with its data files. A body the disk cannot hold is refused "
        "with 507 first.",
    )
    max_attempts: int = Field(default=3, ge=1, description="Deliveries before worker_lost.")
    lease_s: float = Field(default=60.0, gt=0, description="Job lease, renewed while running.")
    job_time_limit_s: float = Field(default=3600.0, gt=0, description="Hard limit per job.")
    inspect_time_limit_s: float = Field(default=120.0, gt=0)
    inspect_wait_s: float = Field(
        default=60.0, ge=0, description="How long uploadModel waits for validation."
    )
    child_memory_bytes: int = Field(
        default=8 * 1024**3, ge=256 * 1024**2, description="Address-space limit of a job."
    )
    measure_memory_bytes: int = Field(
        default=1024**3,
        ge=0,
        description="Memory the latency benchmark and the fidelity check may take: they load "
        "the dense and the pruned model in ONNX Runtime at once, so they run only when twice "
        "the model's size fits. Above it the report says `not measured` and why, the upload's "
        "runtime probe is skipped, and activation methods (wanda, sparsegpt, obd, taylor) are "
        "refused at createJob.",
    )
    reconcile_interval_s: float = Field(default=30.0, gt=0)
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
        description="Where a job's calibration statistics and SparseGPT solves run: auto (a "
        "CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N. cuda on a worker "
        "without a GPU fails the job with an error naming this setting.",
    )
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description='API key digest -> tenant, e.g. {"sha256:9f86…": "acme"} (`shears keys new '
        "acme` prints one; a plain key is hashed on load). Empty: no authentication, one "
        'tenant ("default"), and `shears serve` and `shears api` bind to 127.0.0.1 only.',
    )
    open_without_keys: bool = Field(
        default=False,
        description="Listen on the given host even without API keys: only where something "
        "else limits who reaches the port (a container whose port is published on the "
        "host's loopback, as docker-compose.yml does by default).",
    )
    stale_upload_s: float = Field(
        default=600.0,
        gt=0,
        description="A partial upload file untouched this long is removed; files of a dead "
        "API process are removed at once.",
    )
    reconcile_min_resend_s: float = Field(
        default=300.0,
        gt=0,
        description="The reconciler re-sends a stuck job at most once per this many seconds.",
    )
    reconcile_queued_after_s: float | None = Field(
        default=None,
        gt=0,
        description="Re-send a job still `queued` after this long (Redis flushed, message "
        "lost); default: the broker's visibility window, when Redis would redeliver it anyway.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="Log lines on stderr: one JSON object each (ts, level, logger, message, "
        "request_id, job_id, attempt), or text for a terminal (docs/observability.md).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    webhook_allow_private: bool = Field(
        default=False,
        description="Accept callback URLs whose host resolves to loopback, link-local, private, "
        "shared (CGNAT), multicast or reserved addresses. Off: such URLs are refused at "
        "createJob and again at each delivery (DNS rebinding).",
    )
    webhook_secret_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated Fernet keys, newest first, that seal webhook signing "
        "secrets in the job store (`shears webhook-secrets new-key` makes one; rotation: "
        "docs/webhooks.md). Empty: a key generated into data_dir/webhook-secret.key.",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Attempts of one webhook before it is given up as failed."
    )
    webhook_timeout_s: float = Field(
        default=15.0, gt=0, description="Per attempt: connect, send and read the answer."
    )
    webhook_backoff_s: float = Field(
        default=5.0,
        gt=0,
        description="Delay before the first retry; later ones follow 6x, 24x, 120x, 360x, 720x "
        "it (5 s, 30 s, 2 min, 10 min, 30 min, 1 h by default), each with ±20% jitter.",
    )
    webhook_poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often the API looks for webhooks due."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    @field_validator("api_keys", mode="after")
    @classmethod
    def _hash_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        # Hashed before anything can print the settings: no repr or log shows a usable key.
        return {at_rest(key): tenant for key, tenant in keys.items()}

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'shears.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        """The blob store's files, or with blob_url only its partial uploads."""
        return self.data_dir / "blobs"

    @property
    def uses_embedded_broker(self) -> bool:
        return not self.broker_url or self.broker_url.startswith("filesystem://")

    @property
    def visibility_timeout_s(self) -> float:
        # Above the hard limit, or Redis redelivers a job that is still running (celery#5935).
        return self.job_time_limit_s + 600.0


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
