"""The client in-process, against a scripted transport: retries, idempotency, long polls, errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import pytest

from lithoseg_client import ApiError, AsyncClient, Client

JOB = "c42b9cbe-81b5-4a53-8a4d-88edb8f6ff82"


class Script:
    """Answers requests from a list of (status, body, headers), recording what was asked."""

    def __init__(self, *answers: tuple[int, dict, dict]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body, headers = self.answers.pop(0)
        return httpx.Response(status, json=body, headers=headers)


def state(status: str, completed: int | None = None, total: int | None = None) -> tuple[int, dict, dict]:
    return 200, {"job_id": JOB, "status": status, "completed_tiles": completed, "total_tiles": total, "error": None, "result": None}, {}


def test_a_submit_is_retried_on_503_with_the_same_idempotency_key():
    script = Script(
        (503, {"detail": "The queue is full; retry later."}, {"Retry-After": "0"}),
        (429, {"detail": "Too many requests."}, {"Retry-After": "0"}),
        (202, {"job_id": JOB, "status": "queued"}, {}),
    )
    with Client("http://svc", "k", transport=httpx.MockTransport(script)) as client:
        job = client.submit(b"\x89PNG...", filename="core.png", mask_weight=0.3, gate=False, depth={"top_depth": 3978, "depth_unit": "ft"})
    assert (job.job_id, job.status, job.name) == (JOB, "queued", "core.png")
    keys = {r.headers["idempotency-key"] for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1  # one job, however often it was sent
    assert all(r.headers["api-key"] == "k" for r in script.requests)
    body = script.requests[-1].content
    assert b'name="mask_weight"' in body and b"0.3" in body and b'name="gate"' in body and b"false" in body
    assert b'name="top_depth"' in body and b"3978" in body and b'name="depth_unit"' in body


def test_other_errors_are_not_retried_and_carry_the_services_sentence():
    script = Script((415, {"detail": "The upload is not an image."}, {}))
    with Client("http://svc", "k", transport=httpx.MockTransport(script)) as client, pytest.raises(ApiError) as caught:
        client.submit(b"text", filename="a.txt")
    assert caught.value.status == 415 and caught.value.detail == "The upload is not an image."
    assert len(script.requests) == 1


def test_retries_give_up_after_their_count():
    script = Script(*[(503, {"detail": "Not ready."}, {"Retry-After": "0"})] * 3)
    with Client("http://svc", "k", retries=2, transport=httpx.MockTransport(script)) as client, pytest.raises(ApiError) as caught:
        client.job(JOB)
    assert caught.value.status == 503 and len(script.requests) == 3


def test_wait_long_polls_to_a_terminal_state_and_reports_progress():
    script = Script(state("queued"), state("started", 1, 4), state("started", 3, 4), state("finished", 4, 4))
    seen: list[tuple[int, int]] = []
    with Client("http://svc", "k", transport=httpx.MockTransport(script)) as client:
        done = client.wait(JOB, on_progress=lambda c, t: seen.append((c, t)))
    assert done.finished and done.done and not done.rejected
    assert seen == [(1, 4), (3, 4), (4, 4)]
    assert all(float(r.url.params["wait"]) > 0 for r in script.requests)  # long polls, not a busy loop


def test_the_async_client_does_the_same():
    script = Script((503, {"detail": "Busy."}, {"Retry-After": "0"}), (202, {"job_id": JOB, "status": "queued"}, {}), state("cancelled"))

    async def scenario() -> None:
        async with AsyncClient("http://svc", "k", transport=httpx.MockTransport(script)) as client:
            job = await client.submit(b"data", filename="x.png")
            done = await client.wait(job.job_id)
            assert done.status == "cancelled" and done.done and not done.finished

    asyncio.run(scenario())
    assert script.requests[0].headers["idempotency-key"] == script.requests[1].headers["idempotency-key"]


def test_an_artifact_of_an_unfinished_job_is_an_error_not_json_bytes():
    script = Script(state("started", 1, 4))
    with Client("http://svc", "k", transport=httpx.MockTransport(script)) as client, pytest.raises(ApiError, match="no png yet"):
        client.overlay(JOB)


def test_the_client_needs_neither_torch_nor_ray():
    code = (
        "import json, sys, lithoseg_client, lithoseg_client.cli\n"
        "print(json.dumps(sorted(m for m in ('torch', 'ray', 'numpy') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
