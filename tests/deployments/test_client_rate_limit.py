"""The client against a rate-limited service: a 429 is waited out (Retry-After) and retried, and
the retried submit makes one job (its Idempotency-Key), not two."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

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


def counted(service: Service, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (from GET /metrics, not rate limited)."""
    text = requests.get(service.url("/metrics"), timeout=30).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_a_429_is_retried_after_its_retry_after_and_makes_one_job(service: Service):
    submitted_before = counted(service, "lithoseg_jobs_submitted_total")
    for _ in range(PER_MINUTE * 3):  # spend the key's burst on lookups of jobs that do not exist
        if requests.get(service.url(f"/job/{uuid.uuid4()}"), headers={"api-key": KEY_A}, timeout=30).status_code == 429:
            break
    refused_before = counted(service, "lithoseg_http_requests_total", route="/predict", status="429")
    with Client(service.base_url, KEY_A) as client:
        job = client.submit(encode(generate_sample(3, height=224, width=288).image), filename="core.png")
        done = client.wait(job.job_id, timeout=300)
    assert done.finished
    assert counted(service, "lithoseg_http_requests_total", route="/predict", status="429") > refused_before  # it was refused first
    assert counted(service, "lithoseg_http_requests_total", route="/predict", status="202") >= 1
    assert counted(service, "lithoseg_jobs_submitted_total") == submitted_before + 1  # and only one job was made
