"""The calls a pipeline makes, per the HTTP contract (API.md), with problem+json errors turned
into one exception that carries the server's explanation."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

FINAL = ("succeeded", "failed", "cancelled")


class ApiError(Exception):
    """The server answered with a problem (4xx/5xx); `detail` says what to fix."""

    def __init__(self, status: int, title: str, detail: str, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.detail = detail
        self.problem = problem
        # The flag whose file was being uploaded: the problem's `file` field means it.
        self.upload_flag: str | None = None


class ShearsClient:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 120.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def upload_model(self, path: Path, fmt: str | None = None) -> dict[str, Any]:
        data = {"format": fmt} if fmt else {}
        with path.open("rb") as f:
            model = self._json("POST", "/v1/models", files={"file": (path.name, f)}, data=data)
        # 202: still validating when the server stopped waiting; follow it to the end.
        while model["status"] == "validating":
            time.sleep(0.5)
            model = self._json("GET", f"/v1/models/{model['id']}")
        return model

    def upload_dataset(self, path: Path) -> dict[str, Any]:
        with path.open("rb") as f:
            return self._json("POST", "/v1/datasets", files={"file": (path.name, f)})

    def create_job(
        self,
        model_id: str,
        spec: dict[str, Any],
        idempotency_key: str | None = None,
        callback: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """``callback``: ``callback_url`` and ``callback_secret`` for a webhook at the end."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"model_id": model_id, "spec": spec, **(callback or {})}
        return self._json("POST", "/v1/jobs", json=body, headers=headers)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def list_jobs(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        return list(self._json("GET", "/v1/jobs", params=params)["items"])

    def events(self, job_id: str, after: int = 0) -> list[dict[str, Any]]:
        page = self._json("GET", f"/v1/jobs/{job_id}/events", params={"after": after})
        return list(page["items"])

    def report(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}/report")

    def wait(
        self,
        job_id: str,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        poll_s: float = 0.5,
    ) -> dict[str, Any]:
        """Follow the job's events until it ends; returns the final Job."""
        seen = 0
        while True:
            job = self.get_job(job_id)
            for event in self.events(job_id, after=seen):
                seen = event["seq"]
                if on_event:
                    on_event(event)
            if job["status"] in FINAL:
                return job
            time.sleep(poll_s)

    def download(self, job_id: str, name: str, dest: Path) -> Path:
        return self._save(f"/v1/jobs/{job_id}/artifacts/{name}", dest)

    def save_report_page(self, job_id: str, dest: Path) -> Path:
        """The report with plots; a 409 problem until the job has succeeded."""
        return self._save(f"/v1/jobs/{job_id}/report.html", dest)

    def _save(self, url: str, dest: Path) -> Path:
        with self.http.stream("GET", url) as response:
            if response.status_code >= 400:
                response.read()
                raise _problem(response)
            with dest.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
        return dest

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, url, **kwargs)
        if response.status_code >= 400:
            raise _problem(response)
        return dict(response.json())


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = dict(response.json())
    except ValueError:
        body = {"title": response.reason_phrase, "detail": response.text[:500]}
    return ApiError(
        response.status_code,
        str(body.get("title", response.reason_phrase)),
        str(body.get("detail", "")),
        body,
    )


def iter_lines(job: dict[str, Any]) -> Iterator[str]:
    """A job as a person reads it, one line."""
    error = job.get("error") or {}
    tail = f"  {error.get('code')}: {error.get('message')}" if error else ""
    yield f"{job['id']}  {job['status']:<9}  {job['created_at']}  model {job['model_id']}{tail}"
