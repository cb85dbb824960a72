"""/v1/models: upload, list, get, delete, download, and retry a failed inspection."""

from fastapi import APIRouter, Request, Response

from api_schemas import Model, Page, Problem
from service import model_uploads
from service.blobs import download, release_blob
from service.deps import BlobsDep, PageDep, ServicesDep, StoreDep, TenantDep
from service.model_sources import JSON_TYPE
from service.openapi import BINARY_SCHEMA
from service.problems import problems
from service.representations import model_view
from service.uploads import MAX_NAME_CHARS, openapi_form

COLLECTION = "/v1/models"
router = APIRouter(prefix=COLLECTION, tags=["models"])

_UPLOAD_FORM = openapi_form(
    {"file": "(the bytes of mnist-mlp.onnx)", "format": "onnx", "name": "mnist-mlp.onnx"},
    format={
        "$ref": "#/components/schemas/ModelFormat",
        "description": "Checked against the content; detected when left out.",
    },
    name={"type": "string", "maxLength": MAX_NAME_CHARS, "description": "Default: file name."},
)
# Import by reference (service/model_sources.py): the same route takes a JSON body naming an
# object the service fetches with its own S3 credentials.
_UPLOAD_FORM["requestBody"]["content"][JSON_TYPE] = {  # type: ignore[index]
    "schema": {
        "type": "object",
        "required": ["source"],
        "properties": {
            "source": {
                "type": "string",
                "pattern": "^s3://",
                "description": "s3://bucket/key of an ONNX file, a .zip or .tar of an ONNX "
                "model with its external data, or a TorchScript archive; fetched with the "
                "service's S3 credentials (SHEARS_S3_ENDPOINT_URL for MinIO and others).",
            },
            "format": {"$ref": "#/components/schemas/ModelFormat"},
            "name": {
                "type": "string",
                "maxLength": MAX_NAME_CHARS,
                "description": "Default: the key's last part.",
            },
        },
        "additionalProperties": False,
        "examples": [{"source": "s3://models/bert/model.tar", "name": "bert-base"}],
    }
}
# Declared optional although a request without a body is refused (422): openapi-python-client
# 0.29 generates a required body with several content types as `X | Unset` without importing
# `Unset`, a client that cannot be imported (openapi-generators/openapi-python-client#1451).
_UPLOAD_FORM["requestBody"]["required"] = False  # type: ignore[index]


@router.post(
    "",
    operation_id="uploadModel",
    status_code=201,
    summary="Upload a model (ONNX or TorchScript), or import one from S3 by reference; a "
    "worker validates it",
    responses={
        202: {"model": Model, "description": "Stored, still `validating`: poll `Location`."},
        **problems(400, 413, 415, 422, 503, 507),
        500: {
            "model": Problem,
            "description": "Opening it failed in Shears, not in the file: the model is kept "
            "(`model_id`) for POST /v1/models/{model_id}/inspect.",
        },
    },
    openapi_extra=_UPLOAD_FORM,
)
async def upload_model(
    request: Request, response: Response, services: ServicesDep, tenant: TenantDep
) -> Model:
    record = await model_uploads.upload_model(request, services, tenant)
    response.headers["Location"] = f"{COLLECTION}/{record.id}"
    if record.status == "validating":
        response.status_code = 202
    return model_view(record)


@router.post(
    "/{model_id}/inspect",
    operation_id="inspectModel",
    summary="Open a `failed` model again (one whose inspection broke in Shears, not in the file)",
    responses={
        202: {"model": Model, "description": "Still `validating`: poll the model."},
        **problems(404, 422, 503),
        500: {
            "model": Problem,
            "description": "It failed again in Shears; `request_id` names the log lines.",
        },
    },
)
async def inspect_model(
    model_id: str, response: Response, services: ServicesDep, tenant: TenantDep
) -> Model:
    """A model that is `ready` (or still `validating`) is returned as it is; one the retry
    finds `invalid` is refused like an upload (422) and removed."""
    record = await model_uploads.retry_inspection(services, tenant, model_id)
    if record.status == "validating":
        response.status_code = 202
    return model_view(record)


@router.get("", operation_id="listModels", summary="List models, newest first")
def list_models(store: StoreDep, tenant: TenantDep, page: PageDep) -> Page[Model]:
    records, next_cursor = store.list_models(tenant, page.limit, page.cursor)
    return Page[Model](items=[model_view(r) for r in records], next_cursor=next_cursor)


@router.get("/{model_id}", operation_id="getModel", summary="Get a model", responses=problems(404))
def get_model(model_id: str, store: StoreDep, tenant: TenantDep) -> Model:
    return model_view(store.get_model(tenant, model_id))


@router.delete(
    "/{model_id}",
    operation_id="deleteModel",
    status_code=204,
    summary="Delete a model that no queued or running job uses",
    responses=problems(404, 409),
)
def delete_model(model_id: str, store: StoreDep, blobs: BlobsDep, tenant: TenantDep) -> None:
    record = store.delete_model(tenant, model_id)
    release_blob(store, blobs, record.sha256)


@router.get(
    "/{model_id}/content",
    operation_id="downloadModel",
    summary="Download the uploaded bytes",
    response_class=Response,
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": BINARY_SCHEMA}},
            "description": "The model file.",
        },
        **problems(404),
    },
)
def download_model(model_id: str, store: StoreDep, blobs: BlobsDep, tenant: TenantDep) -> Response:
    record = store.get_model(tenant, model_id)
    return download(blobs, record.sha256, record.name, "application/octet-stream")
