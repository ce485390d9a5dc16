"""The sync and async clients.

Each API operation is written once, as a generator that yields the HTTP requests it needs and
receives their responses ("sans-I/O"); `Client` drives it with a blocking `httpx.Client` and
`AsyncClient` with an `httpx.AsyncClient`. Only the sending and the retry loop exist twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from lithoseg_client.types import ApiError, BatchSubmitted, Job, JobState

T = TypeVar("T")
Operation = Generator[httpx.Request, httpx.Response, T]
Progress = Callable[[int, int], None]  # (tiles completed, tiles in all)

RETRY_STATUSES = (429, 503)  # the only answers worth retrying: the service said "later"
LONG_POLL_S = 30.0  # the server answers a long poll as soon as the job ends, or after this
DEFAULT_RETRIES = 8
MAX_RETRY_AFTER_S = 60.0


def retry_after(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before retrying: the server's Retry-After, else a doubling backoff."""
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(response.headers["retry-after"])))
    except (KeyError, ValueError):
        return min(MAX_RETRY_AFTER_S, 0.5 * 2**attempt)


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or ApiError with the service's sentence."""
    if response.is_success:
        return response
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text or response.reason_phrase
    raise ApiError(response.status_code, str(detail))


def image_upload(image: str | Path | bytes, filename: str | None) -> tuple[str, bytes]:
    """(file name, bytes) of an image given as a path or as bytes."""
    if isinstance(image, bytes):
        return filename or "image", image
    path = Path(image)
    return filename or path.name, path.read_bytes()


class Operations:
    """The API's operations, independent of how requests are sent."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"api-key": api_key}

    def request(self, method: str, path: str, timeout: float | None = None, **kwargs: Any) -> httpx.Request:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        extensions = {"timeout": httpx.Timeout(timeout).as_dict()} if timeout else {}
        request = httpx.Request(method, f"{self.base_url}{path}", headers=headers, extensions=extensions, **kwargs)
        request.read()  # the body in memory, so that a retry sends it again
        return request

    def submit(
        self,
        image: str | Path | bytes,
        filename: str | None,
        mask_weight: float | None,
        gate: bool | None,
        idempotency_key: str | None,
        depth: dict[str, Any] | None = None,
    ) -> Operation[Job]:
        name, data = image_upload(image, filename)
        fields = {
            k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (("mask_weight", mask_weight), ("gate", gate)) if v is not None
        }
        fields.update(
            {k: str(v) for k, v in (depth or {}).items() if v is not None}
        )  # top_depth, bottom_depth, depth_unit, columns, layout
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}  # the same on every retry
        response = yield self.request("POST", "/predict", files={"file": (name, data)}, data=fields, headers=headers)
        body = checked(response).json()
        return Job(body["job_id"], body["status"], name)

    def submit_batch(self, archive: str | Path | bytes, mask_weight: float | None, gate: bool | None) -> Operation[BatchSubmitted]:
        name, data = image_upload(archive, "batch.zip")
        fields = {
            k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (("mask_weight", mask_weight), ("gate", gate)) if v is not None
        }
        response = yield self.request("POST", "/predict/batch", files={"archive": (name, data, "application/zip")}, data=fields)
        body = checked(response).json()
        return BatchSubmitted([Job(j["job_id"], j["status"], j.get("name")) for j in body["jobs"]], body["skipped"])

    def job(self, job_id: str, wait: float = 0.0) -> Operation[JobState]:
        params = {"form": "json", **({"wait": str(wait)} if wait else {})}
        response = yield self.request("GET", f"/job/{job_id}", params=params, timeout=wait + 30)
        return JobState.from_json(checked(response).json())

    def wait(self, job_id: str, timeout: float | None, on_progress: Progress | None) -> Operation[JobState]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = LONG_POLL_S if deadline is None else min(LONG_POLL_S, deadline - time.monotonic())
            state = yield from self.job(job_id, wait=max(0.0, left))
            if on_progress is not None and state.total_tiles:
                on_progress(state.completed_tiles or 0, state.total_tiles)
            if state.done:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"Job {job_id} is still {state.status} after {timeout} s.")

    def depth_log(self, job_id: str, form: str) -> Operation[str]:
        response = yield self.request("GET", f"/job/{job_id}", params={"form": form})
        checked(response)
        if response.headers.get("content-type", "").startswith("application/json"):
            raise ApiError(409, f"Job {job_id} has no log in depth yet: it is {response.json().get('status')}.")
        return response.text

    def artifact(self, job_id: str, form: str) -> Operation[bytes]:
        response = yield self.request("GET", f"/job/{job_id}", params={"form": form})
        checked(response)
        if not response.headers.get("content-type", "").startswith("image/png"):
            raise ApiError(409, f"Job {job_id} has no {form} yet: it is {response.json().get('status')}.")
        return response.content

    def cancel(self, job_id: str) -> Operation[None]:
        response = yield self.request("DELETE", f"/job/{job_id}")
        checked(response)
        return None


class Client:
    """The lithoseg API over a blocking `httpx.Client`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 60.0,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.ops = Operations(base_url, api_key)
        self.retries = retries
        self.http = httpx.Client(timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _send(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self.retries + 1):
            response = self.http.send(request)
            if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                return response
            time.sleep(retry_after(response, attempt))
        raise AssertionError("unreachable")

    def _run(self, operation: Operation[T]) -> T:
        try:
            request = next(operation)
            while True:
                request = operation.send(self._send(request))
        except StopIteration as done:
            return done.value

    def submit(
        self,
        image: str | Path | bytes,
        filename: str | None = None,
        mask_weight: float | None = None,
        gate: bool | None = None,
        idempotency_key: str | None = None,
        depth: dict[str, Any] | None = None,
    ) -> Job:
        """Submit a photo (a path or its bytes); the job starts queued. `depth`: the depths its
        core spans, for a log in depth (`top_depth`, `bottom_depth`, `depth_unit`, `columns`, `layout`)."""
        return self._run(self.ops.submit(image, filename, mask_weight, gate, idempotency_key, depth))

    def submit_batch(self, archive: str | Path | bytes, mask_weight: float | None = None, gate: bool | None = None) -> BatchSubmitted:
        """Submit a ZIP of photos: a job each."""
        return self._run(self.ops.submit_batch(archive, mask_weight, gate))

    def job(self, job_id: str, wait: float = 0.0) -> JobState:
        """The job now, or within `wait` seconds of it ending."""
        return self._run(self.ops.job(job_id, wait))

    def wait(self, job_id: str, timeout: float | None = None, on_progress: Progress | None = None) -> JobState:
        """Long-poll until the job is finished, failed or cancelled."""
        return self._run(self.ops.wait(job_id, timeout, on_progress))

    def overlay(self, job_id: str) -> bytes:
        return self._run(self.ops.artifact(job_id, "png"))

    def mask(self, job_id: str) -> bytes:
        """The class-index PNG (one class id per pixel)."""
        return self._run(self.ops.artifact(job_id, "mask"))

    def heatmap(self, job_id: str) -> bytes:
        return self._run(self.ops.artifact(job_id, "heatmap"))

    def depth_log(self, job_id: str, form: str = "csv") -> str:
        """The log in depth of a job submitted with depths: `csv` (from, to, unit, lithology,
        confidence) or `las` (LAS 2.0 with a discrete lithology curve)."""
        return self._run(self.ops.depth_log(job_id, form))

    def cancel(self, job_id: str) -> None:
        """Cancel a queued or running job (or delete a finished one)."""
        self._run(self.ops.cancel(job_id))


class AsyncClient:
    """The lithoseg API over an `httpx.AsyncClient`: the same methods, as coroutines."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 60.0,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.ops = Operations(base_url, api_key)
        self.retries = retries
        self.http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self.retries + 1):
            response = await self.http.send(request)
            if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                return response
            await asyncio.sleep(retry_after(response, attempt))
        raise AssertionError("unreachable")

    async def _run(self, operation: Operation[T]) -> T:
        try:
            request = next(operation)
            while True:
                request = operation.send(await self._send(request))
        except StopIteration as done:
            return done.value

    async def submit(
        self,
        image: str | Path | bytes,
        filename: str | None = None,
        mask_weight: float | None = None,
        gate: bool | None = None,
        idempotency_key: str | None = None,
        depth: dict[str, Any] | None = None,
    ) -> Job:
        return await self._run(self.ops.submit(image, filename, mask_weight, gate, idempotency_key, depth))

    async def submit_batch(self, archive: str | Path | bytes, mask_weight: float | None = None, gate: bool | None = None) -> BatchSubmitted:
        return await self._run(self.ops.submit_batch(archive, mask_weight, gate))

    async def job(self, job_id: str, wait: float = 0.0) -> JobState:
        return await self._run(self.ops.job(job_id, wait))

    async def wait(self, job_id: str, timeout: float | None = None, on_progress: Progress | None = None) -> JobState:
        return await self._run(self.ops.wait(job_id, timeout, on_progress))

    async def overlay(self, job_id: str) -> bytes:
        return await self._run(self.ops.artifact(job_id, "png"))

    async def mask(self, job_id: str) -> bytes:
        return await self._run(self.ops.artifact(job_id, "mask"))

    async def heatmap(self, job_id: str) -> bytes:
        return await self._run(self.ops.artifact(job_id, "heatmap"))

    async def depth_log(self, job_id: str, form: str = "csv") -> str:
        return await self._run(self.ops.depth_log(job_id, form))

    async def cancel(self, job_id: str) -> None:
        await self._run(self.ops.cancel(job_id))
