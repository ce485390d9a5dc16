"""A Python client for the lithoseg HTTP API, sync and async. It needs only `httpx`.

    from lithoseg_client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as client:
        job = client.submit("core.jpg")
        done = client.wait(job.job_id, on_progress=lambda completed, total: print(completed, total))
        if done.finished and not done.result["rejected"]:
            open("overlay.png", "wb").write(client.overlay(job.job_id))

`AsyncClient` has the same methods as coroutines. Every submit carries an `Idempotency-Key`
(one is made when you give none), so a retried submit never makes a second job; requests are
retried only on 429 and 503, after the server's `Retry-After`; `wait` long-polls until the job
is finished, failed or cancelled. Errors come back as `ApiError` with the server's sentence.
"""

from lithoseg_client.client import AsyncClient, Client
from lithoseg_client.types import TERMINAL, ApiError, BatchSubmitted, Job, JobState

__all__ = ["TERMINAL", "ApiError", "AsyncClient", "BatchSubmitted", "Client", "Job", "JobState"]
