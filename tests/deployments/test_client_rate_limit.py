"""The client against a rate-limited service: a 429 is waited out (Retry-After) and retried, and
the retried submit makes one job (its Idempotency-Key), not two."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from lithoseg_client import Client
from tests.conftest import encode
from tests.service import KEY_A, Service, run_service
from training.synthetic import generate_sample

pytestmark = pytest.mark.slow
PER_MINUTE = 6  # a token every 10 s: once the burst is spent the next request is refused for ~10 s


@pytest.fixture(scope="module")
def service(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    store = tmp_path_factory.mktemp("store")
    with run_service(
        serve_port, store_url=store.as_uri(), gate_threshold=0, scale_search=False, rate_limit_per_minute=PER_MINUTE
    ) as running:
        yield running


def test_a_429_is_retried_after_its_retry_after_and_makes_one_job(service: Service):
    submitted_before = service.metric("lithoseg_jobs_submitted_total")
    for _ in range(PER_MINUTE * 3):  # spend the key's burst on lookups of jobs that do not exist
        if requests.get(service.url(f"/job/{uuid.uuid4()}"), headers={"api-key": KEY_A}, timeout=30).status_code == 429:
            break
    refused_before = service.metric("lithoseg_http_requests_total", route="/predict", status="429")
    with Client(service.base_url, KEY_A) as client:
        job = client.submit(encode(generate_sample(3, height=224, width=288).image), filename="core.png")
        done = client.wait(job.job_id, timeout=300)
    assert done.finished
    assert service.metric("lithoseg_http_requests_total", route="/predict", status="429") > refused_before  # it was refused first
    assert service.metric("lithoseg_http_requests_total", route="/predict", status="202") >= 1
    assert service.metric("lithoseg_jobs_submitted_total") == submitted_before + 1  # and only one job was made
