"""Uploaded models: a row per upload, `validating` until a worker's inspection ends it."""

from typing import Any

import sqlalchemy as sa

from storage.database import Database, datasets, jobs, models, utcnow
from storage.errors import Conflict
from storage.ids import new_id
from storage.records import ModelRecord
from storage.rows import TableRows


class ModelRows:
    """The model half of the job store (storage/jobs.py composes the resources)."""

    db: Database

    @property
    def _models(self) -> TableRows:
        return TableRows(self.db, models, "model")

    def create_model(self, tenant: str, name: str, sha256: str, size_bytes: int) -> ModelRecord:
        row: dict[str, Any] = {
            "id": new_id("mdl"),
            "tenant": tenant,
            "name": name,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "format": None,
            "status": "validating",
            "info": None,
            "error": None,
            "error_code": None,
            "created_at": utcnow(),
        }
        self._models.insert(row)
        return ModelRecord(**row)

    def get_model(self, tenant: str | None, model_id: str) -> ModelRecord:
        return ModelRecord(**self._models.get(tenant, model_id))

    def list_models(
        self, tenant: str, limit: int, cursor: str | None
    ) -> tuple[list[ModelRecord], str | None]:
        rows, next_cursor = self._models.page(tenant, limit, cursor)
        return [ModelRecord(**r) for r in rows], next_cursor

    def set_model_validated(self, model_id: str, fmt: str, info: dict[str, Any]) -> None:
        with self.db.begin() as conn:
            conn.execute(
                models.update()
                .where(models.c.id == model_id)
                .values(status="ready", format=fmt, info=info, error=None, error_code=None)
            )

    def set_model_invalid(self, model_id: str, error: str, code: str = "invalid_model") -> None:
        """The file's fault: it cannot be pruned, whoever retries."""
        self._end_inspection(model_id, "invalid", error, code)

    def set_model_failed(self, model_id: str, error: str, code: str = "internal_error") -> None:
        """Our fault: the file may be fine, and `retry_model_inspection` tries again."""
        self._end_inspection(model_id, "failed", error, code)

    def _end_inspection(self, model_id: str, status: str, error: str, code: str) -> None:
        with self.db.begin() as conn:
            conn.execute(
                models.update()
                .where(models.c.id == model_id, models.c.status == "validating")
                .values(status=status, error=error, error_code=code)
            )

    def retry_model_inspection(self, tenant: str, model_id: str) -> ModelRecord:
        """A `failed` model goes back to `validating`; other states are returned unchanged
        (a `validating` or `ready` model needs no retry; an `invalid` one would fail again)."""
        with self.db.begin() as conn:
            conn.execute(
                models.update()
                .where(models.c.id == model_id, models.c.tenant == tenant)
                .where(models.c.status == "failed")
                .values(status="validating", error=None, error_code=None)
            )
        return self.get_model(tenant, model_id)

    def delete_model(self, tenant: str, model_id: str) -> ModelRecord:
        """Delete the row; return it so the caller can drop a blob nobody else references."""
        record = self.get_model(tenant, model_id)
        with self.db.begin() as conn:
            active = conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(jobs.c.model_id == model_id, jobs.c.status.in_(("queued", "running")))
            ).scalar_one()
            if active:
                raise Conflict(f"model {model_id!r} has {active} queued or running job(s)")
            conn.execute(models.delete().where(models.c.id == model_id))
        return record

    def sha256_in_use(self, sha256: str) -> bool:
        """Whether a model, a dataset or a job's artifact still references these bytes."""
        with self.db.engine.connect() as conn:
            used = (
                conn.execute(
                    sa.select(models.c.id).where(models.c.sha256 == sha256).limit(1)
                ).first()
                or conn.execute(
                    sa.select(datasets.c.id).where(datasets.c.sha256 == sha256).limit(1)
                ).first()
            )
            if used:
                return True
            for (artifacts,) in conn.execute(sa.select(jobs.c.artifacts)):
                if any(a.get("sha256") == sha256 for a in artifacts or []):
                    return True
        return False
