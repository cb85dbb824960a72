"""uploadDataset: real `.npz` files in, refused when they could carry code or tricks."""

import io
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from api_http import assert_problem
from sklearn.datasets import load_digits


def post_npz(http: httpx.Client, payload: bytes, name: str = "data.npz") -> httpx.Response:
    return http.post("/v1/datasets", files={"file": (name, payload)})


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_digits_upload_describes_samples_and_arrays(http: httpx.Client) -> None:
    digits = load_digits()
    payload = npz_bytes(x=digits.data.astype(np.float32), labels=digits.target)
    response = post_npz(http, payload, "digits.npz")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["id"].startswith("ds_")
    assert dataset["name"] == "digits.npz"
    assert dataset["samples"] == 1797
    arrays = {a["name"]: a for a in dataset["arrays"]}
    assert arrays["x"] == {"name": "x", "dtype": "float32", "shape": [1797, 64]}
    assert arrays["labels"]["shape"] == [1797]
    assert http.get(f"/v1/datasets/{dataset['id']}").json() == dataset
    listed = http.get("/v1/datasets").json()["items"]
    assert dataset["id"] in [d["id"] for d in listed]


def test_an_object_array_is_refused(http: httpx.Client) -> None:
    payload = npz_bytes(x=np.zeros((2, 3)), meta=np.array([{"a": 1}, None], dtype=object))
    problem = assert_problem(post_npz(http, payload), 422, "invalid_dataset")
    assert "meta" in problem["detail"] and "pickle" in problem["detail"]


def test_arrays_that_disagree_on_samples_are_refused(http: httpx.Client) -> None:
    payload = npz_bytes(x=np.zeros((10, 4)), labels=np.zeros(9))
    assert "samples" in assert_problem(post_npz(http, payload), 422)["detail"]


@pytest.mark.parametrize("member", ["../x.npy", "/etc/x.npy", "sub/x.npy", "x.pkl"])
def test_archive_members_with_path_tricks_are_refused(http: httpx.Client, member: str) -> None:
    array = io.BytesIO()
    np.save(array, np.zeros((3, 2)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, array.getvalue())
    assert "member" in assert_problem(post_npz(http, buffer.getvalue()), 422)["detail"]


def test_a_file_that_is_not_npz_is_refused(http: httpx.Client, tmp_path: Path) -> None:
    array = io.BytesIO()
    np.save(array, np.zeros((3, 2)))  # a bare .npy, not an archive
    assert_problem(post_npz(http, array.getvalue()), 422, "invalid_dataset")
    assert_problem(post_npz(http, b"PK\x03\x04 truncated zip"), 422, "invalid_dataset")


def test_delete_dataset(http: httpx.Client) -> None:
    dataset = post_npz(http, npz_bytes(x=np.ones((4, 2)))).json()
    assert http.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert_problem(http.get(f"/v1/datasets/{dataset['id']}"), 404)
