"""The HTTP contract of Shears, shared by the API and the worker (pydantic v2 only)."""

from api_schemas.common import Page, Problem, ProblemFieldError, TensorInfo
from api_schemas.datasets import ArrayInfo, Dataset
from api_schemas.jobs import (
    Artifact,
    Job,
    JobCreate,
    JobError,
    JobEvent,
    JobProgress,
    JobStatus,
)
from api_schemas.manifest import Manifest
from api_schemas.methods import Method
from api_schemas.models import Model, ModelFormat, ModelStatus, PrunableTensor
from api_schemas.report import Report
from api_schemas.spec import (
    EvaluationSpec,
    GradualSchedule,
    Granularity,
    IterativeSchedule,
    LatencySpec,
    LayerSelection,
    MagnitudeMethod,
    OneShotSchedule,
    PruneSpec,
    RandomMethod,
    RetrainSpec,
    Schedule,
    UnstructuredGranularity,
)
from api_schemas.webhook_events import JobWebhook
from api_schemas.webhooks import CallbackState, CallbackStatus, WebhookEventType

__all__ = [
    "ArrayInfo",
    "Artifact",
    "CallbackState",
    "CallbackStatus",
    "Dataset",
    "EvaluationSpec",
    "GradualSchedule",
    "Granularity",
    "IterativeSchedule",
    "Job",
    "JobCreate",
    "JobError",
    "JobEvent",
    "JobProgress",
    "JobStatus",
    "JobWebhook",
    "LatencySpec",
    "LayerSelection",
    "MagnitudeMethod",
    "Manifest",
    "Method",
    "Model",
    "ModelFormat",
    "ModelStatus",
    "OneShotSchedule",
    "Page",
    "Problem",
    "ProblemFieldError",
    "PrunableTensor",
    "PruneSpec",
    "RandomMethod",
    "Report",
    "RetrainSpec",
    "Schedule",
    "TensorInfo",
    "UnstructuredGranularity",
    "WebhookEventType",
]
