"""/v1/datasets: upload (`.npz`), list, get, delete."""

from fastapi import APIRouter, Request, Response

from api_schemas import Dataset, Page
from service import datasets
from service.deps import PageDep, ServicesDep, StoreDep, TenantDep
from service.problems import problems
from service.representations import dataset_view
from service.uploads import MAX_NAME_CHARS, openapi_form

COLLECTION = "/v1/datasets"
router = APIRouter(prefix=COLLECTION, tags=["datasets"])

_UPLOAD_FORM = openapi_form(
    {"file": "(the bytes of mnist-calibration.npz)", "name": "mnist-calibration.npz"},
    name={"type": "string", "maxLength": MAX_NAME_CHARS, "description": "Default: file name."},
)


@router.post(
    "",
    operation_id="uploadDataset",
    status_code=201,
    summary="Upload an .npz of arrays keyed by input name, plus optional `labels`",
    responses=problems(400, 413, 415, 422),
    openapi_extra=_UPLOAD_FORM,
)
async def upload_dataset(
    request: Request, response: Response, services: ServicesDep, tenant: TenantDep
) -> Dataset:
    record = await datasets.upload_dataset(request, services, tenant)
    response.headers["Location"] = f"{COLLECTION}/{record.id}"
    return dataset_view(record)


@router.get("", operation_id="listDatasets", summary="List datasets, newest first")
def list_datasets(store: StoreDep, tenant: TenantDep, page: PageDep) -> Page[Dataset]:
    records, next_cursor = store.list_datasets(tenant, page.limit, page.cursor)
    return Page[Dataset](items=[dataset_view(r) for r in records], next_cursor=next_cursor)


@router.get(
    "/{dataset_id}", operation_id="getDataset", summary="Get a dataset", responses=problems(404)
)
def get_dataset(dataset_id: str, store: StoreDep, tenant: TenantDep) -> Dataset:
    return dataset_view(store.get_dataset(tenant, dataset_id))


@router.delete(
    "/{dataset_id}",
    operation_id="deleteDataset",
    status_code=204,
    summary="Delete a dataset that no queued or running job uses",
    responses=problems(404, 409),
)
def delete_dataset(dataset_id: str, services: ServicesDep, tenant: TenantDep) -> None:
    datasets.delete_dataset(services, tenant, dataset_id)
