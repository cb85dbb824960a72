"""A job's artifacts and report, as the API hands them out."""

from fastapi.responses import StreamingResponse

from api_schemas import Report
from service.blobs import download
from service.problems import ProblemError
from storage import BlobStore, JobRecord, NotFound

_MEDIA_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8"}
_EXTENSIONS = {
    "onnx": ".onnx",
    "onnx+zip": ".zip",  # an ONNX model and its external data files
    "onnx+tar": ".tar",
    "torchscript": ".pt",
    "json": ".json",
    "npz": ".npz",
    "html": ".html",
}


def artifact_download(
    blobs: BlobStore, job: JobRecord, name: str, inline: bool = False
) -> StreamingResponse:
    artifact = next((a for a in job.artifacts if a.get("name") == name), None)
    if artifact is None:
        names = ", ".join(a["name"] for a in job.artifacts) or "none yet"
        raise NotFound(f"job {job.id!r} ({job.status}) has no artifact {name!r}; it has: {names}")
    fmt = str(artifact.get("format", ""))
    media_type = _MEDIA_TYPES.get(fmt, "application/octet-stream")
    filename = f"{job.id}-{name}{_EXTENSIONS.get(fmt, '')}"
    return download(blobs, artifact["sha256"], filename, media_type, inline)


def report_page(blobs: BlobStore, job: JobRecord) -> StreamingResponse:
    job_report(job)  # 409 until the job has succeeded
    return artifact_download(blobs, job, "report_html", inline=True)


def job_report(job: JobRecord) -> Report:
    if job.status != "succeeded":
        raise ProblemError(
            409,
            "job_not_succeeded",
            f"job {job.id!r} is {job.status}; its report exists once it has succeeded",
        )
    return Report.model_validate(job.report)
