"""Ingress: the HTTP API (the reference service's contract and more), auth, limits, upload probe."""


import asyncio
import base64
import logging
import math
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.datastructures import UploadFile

from deployments import http_errors
from deployments.auth import API_KEY_HEADER, KeyRing, RateLimiter
from deployments.http_errors import BadRequest, ErrorResponse, JobNotFound, PayloadTooLarge, ServiceUnavailable, UnsupportedMedia
from deployments.jobs import mask_key, new_job_id, overlay_key, parse_job_id, upload_key
from deployments.metrics import IngressMetrics
from deployments.settings import Settings
from deployments.tracker import TRACKER_NAMESPACE, JobTracker
from pipelines.decode import probe_image
from pipelines.errors import InvalidParameterError
from pipelines.render import check_mask_weight
from storage import ObjectNotFound, open_store

logger = logging.getLogger("ray.serve")

app = FastAPI(
    title="lithoseg",
    version="0.1.0",
    description="Lithology segmentation of drill-core photographs: submit an image, poll the job, "
    "download the overlay, the class-index mask or the JSON result. Every endpoint but /health, "
    "/ready, /metrics and the docs needs the `api-key` header.",
)
http_errors.install(app)
METRICS = IngressMetrics()  # one per replica process

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 415, 422, 429, 503)}
PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "JPEG, PNG, TIFF, BMP or WebP image."},
                        "mask_weight": {"type": "number", "minimum": 0, "maximum": 1, "description": "Overlay opacity (default 0.5)."},
                    },
                }
            }
        },
    }
}
FORMS = ("json", "png", "mask")
KEEPALIVE_S = 2.0


def parse_mask_weight(raw: str | None, default: float) -> float:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameterError(f"The mask_weight must be a number between 0 and 1; got {raw[:40]!r}.") from None
    if not math.isfinite(value):
        raise InvalidParameterError(f"The mask_weight must be a finite number between 0 and 1; got {raw[:40]!r}.")
    return check_mask_weight(value)


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256)
@serve.ingress(app)
class Ingress:
    def __init__(self, settings: Settings, runner: DeploymentHandle, segmenter: DeploymentHandle) -> None:
        self.settings = settings
        self.keys = KeyRing(settings.api_key_list())
        self.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
        self.store = open_store(settings.store_url, settings.s3_endpoint_url)
        self.segmenter = segmenter
        self.tracker = JobTracker.options(  # type: ignore[attr-defined]
            name=settings.tracker_name, namespace=TRACKER_NAMESPACE, lifetime="detached", get_if_exists=True
        ).remote(settings, runner)
        self._keepalive = asyncio.get_running_loop().create_task(self._keep_tracker_running())
        if not self.keys._digests:
            logger.warning("No API keys configured (LITHOSEG_API_KEYS): every request will be refused.")

    async def _keep_tracker_running(self) -> None:
        """Pings the tracker so that, after a restart, it resumes its queue without waiting for a request."""
        while True:
            try:
                await self.tracker.ping.remote()
            except Exception:  # the tracker is restarting; Ray retries, we just try again
                logger.warning("JobTracker did not answer a ping", exc_info=True)
            await asyncio.sleep(KEEPALIVE_S)

    def _authorize(self, request: Request) -> str:
        owner = self.keys.check(request.headers.get(API_KEY_HEADER))
        self.rate_limiter.check(owner)
        return owner

    async def _job(self, job_id: str, owner: str) -> dict[str, Any]:
        canonical = parse_job_id(job_id)
        if canonical is None:
            raise JobNotFound(f"The job id {job_id[:64]!r} is not valid; job ids are UUIDs as returned by POST /predict.")
        job = await self.tracker.get.remote(canonical, owner)
        if job is None:
            raise JobNotFound(f"There is no job {canonical}.")
        return job

    async def _read_upload(self, request: Request) -> tuple[bytes, str | None, str | None]:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise UnsupportedMedia("POST /predict expects multipart/form-data with the image in the field `file`.")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_upload_bytes + 64 * 1024:
            raise PayloadTooLarge(f"The upload is {int(declared):,} bytes; the limit is {self.settings.max_upload_bytes:,} bytes.")
        try:
            form = await request.form(max_files=1, max_fields=16)
        except Exception as exc:  # malformed multipart bodies raise a variety of parser errors
            raise BadRequest("The multipart/form-data body could not be parsed.") from exc
        upload = form.get("file")
        if upload is None:
            raise BadRequest("The request has no `file` field; send the image as multipart/form-data field `file`.")
        if not isinstance(upload, UploadFile):
            raise BadRequest("The `file` field must be a file upload, not a text value.")
        data = await upload.read(self.settings.max_upload_bytes + 1)
        if len(data) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(f"The upload is larger than the limit of {self.settings.max_upload_bytes:,} bytes.")
        mask_weight = form.get("mask_weight")
        if mask_weight is not None and not isinstance(mask_weight, str):
            raise InvalidParameterError("The mask_weight must be a number between 0 and 1, sent as a form field.")
        return data, upload.filename, mask_weight

    # -- the reference contract ------------------------------------------------------------------

    @app.post("/predict", status_code=202, responses=ERRORS, openapi_extra=PREDICT_BODY, summary="Submit an image for segmentation")
    async def predict(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        owner = self._authorize(request)
        data, filename, raw_weight = await self._read_upload(request)
        mask_weight = parse_mask_weight(raw_weight, self.settings.default_mask_weight)
        idempotency_key = request.headers.get("idempotency-key") or None
        if idempotency_key:
            existing = await self.tracker.find_idempotent.remote(owner, idempotency_key)
            if existing is not None:
                return JSONResponse({"job_id": existing["job_id"], "status": existing["status"]}, status_code=200)
        info = await asyncio.to_thread(probe_image, data, self.settings.max_pixels)
        job_id = new_job_id()
        await asyncio.to_thread(self.store.put, upload_key(job_id), data)
        image = {"format": info.format, "width": info.width, "height": info.height, "mode": info.mode}
        try:
            job, created = await self.tracker.submit.remote(job_id, owner, mask_weight, idempotency_key, filename, image)
        except Exception:
            await asyncio.to_thread(self.store.delete, upload_key(job_id))
            raise
        if not created:  # lost an idempotency race: keep the first job
            await asyncio.to_thread(self.store.delete, upload_key(job_id))
        METRICS.submitted.inc()
        METRICS.latency.labels("POST", "/predict").observe(time.perf_counter() - started)
        return JSONResponse({"job_id": job["job_id"], "status": job["status"]}, status_code=202 if created else 200)

    @app.get("/job/{job_id}", responses={200: {"content": {"image/png": {}}}, **ERRORS}, summary="Job status and result")
    async def job(self, job_id: str, request: Request, form: str = "json") -> Response:
        owner = self._authorize(request)
        if form not in FORMS:
            raise BadRequest(f"The form parameter must be one of {', '.join(FORMS)}; got {form[:20]!r}.")
        job = await self._job(job_id, owner)
        if job["status"] != "finished":
            return JSONResponse(job)
        if form == "png":
            return Response(await self._artifact(overlay_key(job["job_id"])), media_type="image/png")
        if form == "mask":
            return Response(await self._artifact(mask_key(job["job_id"])), media_type="image/png")
        overlay_png = await self._artifact(overlay_key(job["job_id"]))
        job["result"] = {**job["result"], "base64": base64.b64encode(overlay_png).decode("ascii")}
        return JSONResponse(job)

    async def _artifact(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self.store.get, key)
        except ObjectNotFound:
            raise JobNotFound("The job's result is no longer stored; results are kept for a limited time.") from None

    @app.delete("/job/{job_id}", responses=ERRORS, summary="Cancel a job and delete its data")
    async def delete_job(self, job_id: str, request: Request) -> JSONResponse:
        owner = self._authorize(request)
        canonical = parse_job_id(job_id)
        outcome = await self.tracker.cancel.remote(canonical, owner) if canonical else None
        if outcome is None:
            await self._job(job_id, owner)  # raises the right 404
        return JSONResponse(outcome)

    # -- operations ------------------------------------------------------------------------------

    @app.get("/health", summary="Liveness")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"model": ErrorResponse}}, summary="Readiness: model loaded, store and tracker reachable")
    async def ready(self) -> dict[str, Any]:
        try:
            model, stats, _ = await asyncio.wait_for(
                asyncio.gather(self.segmenter.info.remote(), self.tracker.ping.remote(), asyncio.to_thread(self.store.ping)), timeout=10
            )
        except Exception as exc:
            raise ServiceUnavailable(f"Not ready: {type(exc).__name__}: {str(exc)[:200]}") from exc
        return {"ready": True, "model": {k: model[k] for k in ("name", "version", "device")}, "queue": stats["queued"]}

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_endpoint(self) -> Response:
        try:
            stats = await asyncio.wait_for(self.tracker.ping.remote(), timeout=5)
        except Exception:
            stats = None
        return Response(METRICS.render(stats), media_type="text/plain; version=0.0.4")


@app.middleware("http")
async def count_requests(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    route = request.scope.get("route")
    METRICS.requests.labels(request.method, getattr(route, "path", "unmatched"), str(response.status_code)).inc()
    return response
