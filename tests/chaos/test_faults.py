"""Faults under load: concurrent clients submit a few hundred jobs while, in turn, Segmenter
replicas are killed, the job tracker is killed twice and the S3 endpoint goes away for 20 s; and,
on a second service, the local store's disk fills up. Afterwards every accepted job has ended
(finished, or failed with a reason), each result was committed once, nothing answered a 5xx other
than 503 with Retry-After, and the service is ready again without a restart.

The S3 server is moto's (as in the S3 tests) behind a TCP proxy: moto keeps its objects in memory,
so stopping its process would lose them; stopping the proxy is the store unreachable with its data
intact, as when a MinIO node restarts. Figures are printed for docs/reliability.md.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from lithoseg_client import Client
from tests.chaos.faults import TcpProxy, kill_replica, kill_tracker
from tests.conftest import encode, free_port
from tests.service import KEY_A, Service, run_service
from training.synthetic import generate_sample

pytestmark = pytest.mark.slow

CLIENTS = 4
JOBS_PER_CLIENT = 60
SUBMIT_EVERY_S = 0.8  # each client: about 50 s of submissions, through which the faults fall
OUTAGE_S = 20


def core_png(seed: int) -> bytes:
    return encode(generate_sample(seed, height=224, width=288).image)


def server_errors(base_url: str) -> dict[str, float]:
    """Answers by 5xx status (from the Ingress's own counters)."""
    text = requests.get(base_url + "/metrics", timeout=30).text
    found: collections.Counter[str] = collections.Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lithoseg_http_requests_total" and sample.labels.get("status", "").startswith("5"):
                found[sample.labels["status"]] += sample.value
    return dict(found)


class Load:
    """CLIENTS threads, each submitting JOBS_PER_CLIENT photos through the Python client (which
    retries 429/503 after Retry-After, with one Idempotency-Key per photo), then waiting for all."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.accepted: list[str] = []
        self.refused: list[str] = []  # given up after the client's retries
        self.lock = threading.Lock()

    def client(self, index: int) -> None:
        with Client(self.base_url, KEY_A) as client:
            for i in range(JOBS_PER_CLIENT):
                try:
                    job = client.submit(core_png(index * 1000 + i), filename=f"c{index}-{i}.png")
                except Exception as exc:
                    with self.lock:
                        self.refused.append(f"{type(exc).__name__}: {exc}")
                else:
                    with self.lock:
                        self.accepted.append(job.job_id)
                time.sleep(SUBMIT_EVERY_S)

    def run(self) -> threading.Thread:
        def all_clients() -> None:
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(self.client, range(CLIENTS)))

        thread = threading.Thread(target=all_clients, daemon=True)
        thread.start()
        return thread

    def ended(self, timeout: float) -> dict[str, dict[str, Any]]:
        with Client(self.base_url, KEY_A) as client:
            return {job_id: client.wait(job_id, timeout=timeout).raw for job_id in self.accepted}


def outcome(jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    statuses = collections.Counter(job["status"] for job in jobs.values())
    reasons = collections.Counter(job["error"] for job in jobs.values() if job["status"] == "failed")
    return {"statuses": dict(statuses), "failure_reasons": dict(reasons)}


def assert_every_job_ended_with_a_reason(jobs: dict[str, dict[str, Any]]) -> None:
    for job in jobs.values():
        assert job["status"] in ("finished", "failed"), job  # none left queued or started, none cancelled
        if job["status"] == "failed":
            assert job["error"] and job["error"][:1].isupper() and job["error"].rstrip().endswith((".", ")")), job


# -- S3: replicas, the tracker and the endpoint ---------------------------------------------------


@pytest.fixture  # not module-scoped: the next test deploys its own service under the same name
def s3_service(serve_port: int, s3_server: str) -> Iterator[tuple[Service, TcpProxy, Any]]:
    import boto3

    bucket = "chaos"
    direct = boto3.client("s3", endpoint_url=s3_server)
    direct.create_bucket(Bucket=bucket)
    proxy = TcpProxy(int(s3_server.rsplit(":", 1)[1]), free_port())
    proxy.start()
    try:
        with run_service(
            serve_port,
            store_url=f"s3://{bucket}/chaos",
            s3_endpoint_url=f"http://127.0.0.1:{proxy.port}",
            gate_threshold=0,
            scale_search=False,
            rate_limit_per_minute=0,
        ) as running:
            yield running, proxy, direct
    finally:
        proxy.stop()


def test_jobs_survive_replica_kills_tracker_kills_and_an_s3_outage(s3_service):
    service, proxy, s3 = s3_service
    load = Load(service.base_url)
    faults: list[str] = []
    outage_answers: list[tuple[int, str | None, str]] = []
    started = time.monotonic()

    def at(second: float) -> None:
        time.sleep(max(0.0, started + second - time.monotonic()))

    submitting = load.run()
    at(4)
    faults.append(f"Segmenter replica killed: {kill_replica('Segmenter')}")
    at(9)
    kill_tracker(service.settings.tracker_name)
    faults.append("JobTracker killed (1)")
    at(14)
    faults.append(f"Segmenter replica killed: {kill_replica('Segmenter')}")
    at(18)
    proxy.stop()
    faults.append(f"S3 endpoint down for {OUTAGE_S} s")
    answer = requests.post(service.url("/predict"), headers={"api-key": KEY_A}, files={"file": ("x.png", core_png(5))}, timeout=120)
    outage_answers.append((answer.status_code, answer.headers.get("retry-after"), answer.json().get("detail", "")))
    at(18 + OUTAGE_S)
    proxy.start()
    at(18 + OUTAGE_S + 6)
    kill_tracker(service.settings.tracker_name)
    faults.append("JobTracker killed (2)")
    at(18 + OUTAGE_S + 11)
    faults.append(f"Segmenter replica killed: {kill_replica('Segmenter')}")
    submitting.join(timeout=600)

    jobs = load.ended(timeout=900)
    figures = {"accepted": len(load.accepted), "refused_after_retries": len(load.refused), **outcome(jobs)}
    print(f"\nfaults: {faults}\noutage answer: {outage_answers}\nfigures: {figures}\n5xx: {server_errors(service.base_url)}")

    assert len(load.accepted) >= CLIENTS * JOBS_PER_CLIENT * 0.9 and not load.refused, load.refused[:5]
    assert_every_job_ended_with_a_reason(jobs)
    status, retry_after, detail = outage_answers[0]
    assert status == 503 and retry_after and int(retry_after) > 0 and detail[:1].isupper(), outage_answers
    assert set(server_errors(service.base_url)) <= {"503"}  # never a 500
    # each result was committed once: the record names its attempt, whose PNGs are what is served;
    # uploads are deleted once a job ends (by the housekeeping, where a tracker kill cut that short)
    prefix = "chaos/jobs/"

    def leftovers() -> list[str]:
        found = []
        for job_id, job in jobs.items():
            keys = {o["Key"] for o in s3.list_objects_v2(Bucket="chaos", Prefix=f"{prefix}{job_id}/").get("Contents", [])}
            committed = {f"{prefix}{job_id}/attempt-{job['attempt']}/{name}.png" for name in ("overlay", "mask", "heatmap")}
            assert job["status"] != "finished" or committed <= keys, (job_id, keys)
            found += [key for key in keys if key.endswith("/upload")]
        return found

    deadline = time.monotonic() + 240
    while remaining := leftovers():
        assert time.monotonic() < deadline, f"uploads never deleted: {remaining[:3]}"
        time.sleep(2)
    sample = next(j for j in jobs.values() if j["status"] == "finished")
    served = service.job(sample["job_id"], form="mask").content
    stored = s3.get_object(Bucket="chaos", Key=f"{prefix}{sample['job_id']}/attempt-{sample['attempt']}/mask.png")["Body"].read()
    assert served == stored
    assert requests.get(service.url("/ready"), timeout=60).status_code == 200  # ready again, nothing restarted by hand


# -- a full disk ----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to its last byte (unbuffered: nothing left to flush when the file closes)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            try:
                while out.write(b"\0" * size):
                    pass
            except OSError:
                pass
    return filler


def test_a_full_disk_refuses_submits_with_503_and_loses_no_accepted_job(serve_port: int, small_disk: Path):
    store = small_disk / "store"
    with run_service(serve_port, store_url=store.as_uri(), gate_threshold=0, scale_search=False, rate_limit_per_minute=0) as service:
        load_ids = [service.submit(core_png(300 + i)).json()["job_id"] for i in range(30)]
        filler = fill(small_disk)
        refused = service.submit(core_png(399))
        more = [service.submit(core_png(400 + i)) for i in range(3)]
        # the disk stays full until the tracker holds jobs back for the store (its gauge in /metrics)
        deadline = time.monotonic() + 120
        while service.metric("lithoseg_jobs_waiting_for_store") == 0:
            assert time.monotonic() < deadline, "no job was held back for the full disk"
            time.sleep(0.2)
        os.unlink(filler)
        with Client(service.base_url, KEY_A) as client:
            jobs = {job_id: client.wait(job_id, timeout=600).raw for job_id in load_ids}
        figures = {"accepted": len(load_ids), **outcome(jobs), "submits while full": [r.status_code for r in [refused, *more]]}
        print(f"\nfull disk: {figures}\n5xx: {server_errors(service.base_url)}")
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
        assert "No space left on device" in refused.json()["detail"] or "store" in refused.json()["detail"].lower()
        assert_every_job_ended_with_a_reason(jobs)
        assert all(job["status"] == "finished" for job in jobs.values()), outcome(jobs)
        assert set(server_errors(service.base_url)) <= {"503"}
        assert requests.get(service.url("/ready"), timeout=60).status_code == 200
        again = service.submit(core_png(500)).json()["job_id"]
        assert service.wait(again)["status"] == "finished"
    shutil.rmtree(store, ignore_errors=True)
