"""The webhook a job's `callback_url` receives, described in the OpenAPI document
(OpenAPI 3.1 `webhooks`), so generated clients and the docs page show its body."""

from fastapi import FastAPI, Header

from api_schemas import JobWebhook


def install_webhook_docs(app: FastAPI) -> None:
    @app.webhooks.post(
        "jobEnded",
        operation_id="jobEnded",
        tags=["jobs"],
        summary="POSTed to a job's callback_url when it ends (Standard Webhooks)",
        description="Sent once per job when it ends `succeeded`, `failed` or `cancelled`, and "
        "retried with backoff until the receiver answers 2xx (410 Gone stops it). Verify "
        "`webhook-signature` before trusting the body: `v1,` and the base64 HMAC-SHA256, keyed "
        "by the base64-decoded part of `callback_secret` after `whsec_`, of "
        "`{webhook-id}.{webhook-timestamp}.{raw body}`. `webhook-id` is the same on every "
        "retry: use it to process each event once.",
        responses={200: {"description": "Any 2xx: delivered."}},
    )
    def job_ended(
        body: JobWebhook,
        webhook_id: str = Header(description="Stable per event; the same on every retry."),
        webhook_timestamp: str = Header(description="Unix seconds of this attempt."),
        webhook_signature: str = Header(description="`v1,<base64 HMAC-SHA256>`."),
    ) -> None:
        """Documentation only: the service sends this request, it never serves it."""
