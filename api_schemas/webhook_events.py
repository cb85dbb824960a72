"""The body of a webhook delivery (apart from `webhooks.py`: it embeds the Job resource,
which itself shows the callback's status)."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api_schemas.jobs import Job
from api_schemas.webhooks import WebhookEventType


class JobWebhook(BaseModel):
    """POSTed to a job's `callback_url` when the job ends, signed per Standard Webhooks."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "job.succeeded",
                    "timestamp": "2026-11-25T08:01:02Z",
                    "data": {
                        "id": "job_8c1d2e3f4a5b",
                        "model_id": "mdl_3f9a1c2b7d4e",
                        "status": "succeeded",
                        "progress": {"stage": "succeeded", "fraction": 1.0},
                        "attempt": 1,
                        "error": None,
                        "created_at": "2026-11-25T08:00:00Z",
                        "started_at": "2026-11-25T08:00:01Z",
                        "finished_at": "2026-11-25T08:01:02Z",
                        "spec": {"method": {"name": "magnitude"}, "sparsity": 0.8},
                        "artifacts": [],
                        "callback_url": "https://ci.example.com/hooks/shears",
                        "callback": {
                            "state": "pending",
                            "attempts": 0,
                            "last_error": None,
                            "next_attempt_at": "2026-11-25T08:01:02Z",
                            "delivered_at": None,
                        },
                    },
                }
            ]
        }
    )

    type: WebhookEventType = Field(description="`job.succeeded`, `job.failed` or `job.cancelled`.")
    timestamp: datetime = Field(description="When the job ended (not when this POST was sent).")
    data: Job = Field(description="The job as `GET /v1/jobs/{job_id}` returned it when it ended.")
