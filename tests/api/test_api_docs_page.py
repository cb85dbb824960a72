"""`/docs` works with no internet: Swagger UI comes from the service itself."""

import re

import httpx


def test_docs_page_loads_only_assets_the_service_serves(http: httpx.Client) -> None:
    page = http.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert urls, page.text
    assert not [u for u in urls if "//" in u], "the page reaches outside the service"
    kinds = {"swagger-ui-bundle.js": "javascript", "swagger-ui.css": "text/css"}
    for name, kind in kinds.items():
        (url,) = [u for u in urls if u.endswith(name)]
        asset = http.get(url)
        assert asset.status_code == 200, url
        assert kind in asset.headers["content-type"]
        assert len(asset.content) > 100_000  # the real bundle, not a stub
    assert "/openapi.json" in urls
    assert http.get("/openapi.json").status_code == 200


def test_docs_page_does_not_send_the_document_to_an_online_validator(
    http: httpx.Client,
) -> None:
    assert '"validatorUrl": null' in http.get("/docs").text


def test_redoc_is_not_served_from_a_cdn(http: httpx.Client) -> None:
    assert http.get("/redoc").status_code == 404
