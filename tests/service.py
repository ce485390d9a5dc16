"""The real Serve application on a local Ray instance, reached over HTTP: the keys the tests use,
`run_service` (deploys the app with settings overrides on the session's Ray, the `serve_port`
fixture of tests/conftest.py) and `Service`, its address with helpers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from deployments.settings import Settings

KEY_A = "test-key-alpha-0001"
KEY_B = "test-key-bravo-0002"


@dataclass
class Service:
    base_url: str
    settings: Settings

    def url(self, path: str) -> str:
        return self.base_url + path

    def submit(self, data: bytes, key: str = KEY_A, filename: str = "core.png", **fields: Any) -> requests.Response:
        return requests.post(self.url("/predict"), headers={"api-key": key}, files={"file": (filename, data)}, data=fields, timeout=60)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include `labels` (GET /metrics: no key, no rate limit)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(self.url("/metrics"), timeout=30).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def job(self, job_id: str, key: str = KEY_A, form: str = "json") -> requests.Response:
        return requests.get(self.url(f"/job/{job_id}"), params={"form": form}, headers={"api-key": key}, timeout=60)

    def wait(
        self, job_id: str, statuses: tuple[str, ...] = ("finished", "failed", "cancelled"), key: str = KEY_A, timeout: float = 300
    ) -> dict[str, Any]:
        """Poll until the job reaches one of `statuses` (polling is how the API is meant to be used)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(job_id, key).json()
            if info["status"] in statuses:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {info['status']} after {timeout} s")
            time.sleep(0.1)


@contextmanager
def run_service(port: int, **overrides: Any) -> Iterator[Service]:
    from deployments.local import deploy, undeploy

    overrides = {"api_keys": f"{KEY_A},{KEY_B}", "host": "127.0.0.1", "port": port, **overrides}
    settings = deploy(overrides)
    try:
        yield Service(f"http://127.0.0.1:{port}", settings)
    finally:
        undeploy(settings)
