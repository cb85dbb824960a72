"""`shears api` with several processes: one scrape counts every worker's requests
(prometheus_client's multiprocess folder, set up by service/cli.py)."""

from collections.abc import Callable, Mapping

import pytest
from test_observed_stack import parse_exposition

from tests.support.processes import descendants
from tests.support.shears import ApiServer

pytestmark = pytest.mark.integration
REQUESTS = 40


def test_every_scrape_counts_the_requests_all_workers_answered(
    shears_env: Callable[..., dict[str, str]],
    start_api: Callable[[Mapping[str, str]], ApiServer],
) -> None:
    api = start_api(shears_env(api_workers=2))
    # A fresh connection per request, so the kernel spreads them over both workers.
    for _ in range(REQUESTS):
        with api.client() as http:
            assert http.get("/v1/jobs/job_missing").status_code == 404

    for _ in range(4):  # whichever worker answers the scrape sees the same total
        with api.client() as http:
            families = parse_exposition(http.get("/metrics").text)
        requests = families["shears_http_requests_total"]
        assert requests.kind == "counter" and requests.help
        assert requests.value(method="GET", route="/v1/jobs/{job_id}", status="404") == REQUESTS
    assert len(descendants(api.process.pid)) >= 2  # the serving processes
