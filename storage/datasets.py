"""Uploaded calibration datasets: immutable rows, described once at upload."""

from typing import Any

from storage.database import Database, datasets, utcnow
from storage.ids import new_id
from storage.records import DatasetRecord
from storage.rows import TableRows


class DatasetRows:
    """The dataset half of the job store (storage/jobs.py composes the resources)."""

    db: Database

    @property
    def _datasets(self) -> TableRows:
        return TableRows(self.db, datasets, "dataset")

    def create_dataset(
        self,
        tenant: str,
        name: str,
        sha256: str,
        size_bytes: int,
        samples: int,
        arrays: list[dict[str, Any]],
    ) -> DatasetRecord:
        row: dict[str, Any] = {
            "id": new_id("ds"),
            "tenant": tenant,
            "name": name,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "samples": samples,
            "arrays": arrays,
            "created_at": utcnow(),
        }
        self._datasets.insert(row)
        return DatasetRecord(**row)

    def get_dataset(self, tenant: str | None, dataset_id: str) -> DatasetRecord:
        return DatasetRecord(**self._datasets.get(tenant, dataset_id))

    def list_datasets(
        self, tenant: str, limit: int, cursor: str | None
    ) -> tuple[list[DatasetRecord], str | None]:
        rows, next_cursor = self._datasets.page(tenant, limit, cursor)
        return [DatasetRecord(**r) for r in rows], next_cursor

    def delete_dataset(self, tenant: str, dataset_id: str) -> DatasetRecord:
        record = self.get_dataset(tenant, dataset_id)
        self._datasets.delete(dataset_id)
        return record
