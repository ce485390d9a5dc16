"""Ingress: the HTTP API (the reference service's contract and more), auth, limits, upload probe."""

import asyncio
import base64
import logging
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.datastructures import UploadFile

import pipelines
from deployments.http import errors as http_errors
from deployments.http import metrics as http_metrics
from deployments.http.auth import API_KEY_HEADER, KeyRing
from deployments.http.errors import (
    BadRequest,
    ErrorResponse,
    JobNotFound,
    ModelNotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    UnsupportedMedia,
)
from deployments.http.headers import security_headers
from deployments.http.inputs import decode_base64_body, parse_bool, parse_confidence, parse_mask_weight, raw_spec
from deployments.http.schemas import BatchAccepted, Health, JobAccepted, JobStatus, Ready, SegmentResult, documented
from deployments.jobs import TERMINAL, heatmap_key, mask_key, new_job_id, overlay_key, parse_job_id, upload_key
from deployments.settings import Settings
from deployments.tracker import TrackerRef
from pipelines.archive import read_archive
from pipelines.classes import default_class_table
from pipelines.decode import ImageInfo, RawSpec, check_raw, probe_image
from pipelines.depth import DepthSpec, to_csv, to_las
from pipelines.errors import ImageTooLargeError, InputError, InvalidParameterError
from storage import ObjectNotFound, open_store

logger = logging.getLogger("ray.serve")

app = FastAPI(
    docs_url=None,  # served below from the project's own copy of Swagger UI, not a CDN
    redoc_url=None,
    title="lithoseg",
    version=pipelines.__version__,
    description="Lithology segmentation of drill-core photographs: submit an image, poll the job, "
    "download the overlay, the class-index mask or the JSON result. Every endpoint but /health, "
    "/ready, /metrics and the docs needs the `api-key` header.",
)
http_errors.install(app)

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 415, 422, 429, 503)}
BINARY = {"type": "string", "format": "binary"}
OPTIONS = {
    "top_depth": {"type": "number", "description": "Depth at the top of the photo's core (with bottom_depth: a log in depth)."},
    "bottom_depth": {"type": "number", "description": "Depth at the bottom of the photo's core."},
    "depth_unit": {"type": "string", "enum": ["m", "ft"], "description": "Unit of the depths (default m)."},
    "columns": {"type": "integer", "description": "Core columns (or rows) in a box photo; found in the photo when not given."},
    "layout": {"type": "string", "enum": ["columns", "rows"], "description": "columns: read left to right, each top down (default)."},
    "mask_weight": {"type": "number", "minimum": 0, "maximum": 1, "description": "Overlay opacity (default 0.5)."},
    "gate": {"type": "boolean", "description": "Run the content gate (default true)."},
}


def request_body(
    field: str, description: str, options: tuple[str, ...] = tuple(OPTIONS), other: dict[str, Any] | None = None
) -> dict[str, Any]:
    """OpenAPI `requestBody` for a multipart upload in `field` (plus the `options` fields it reads),
    and any other content types the endpoint reads."""
    fields = {field: {**BINARY, "description": description}, **{name: OPTIONS[name] for name in options}}
    multipart = {"type": "object", "required": [field], "properties": fields}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": multipart}, **(other or {})}}}


PREDICT_BODY = request_body(
    "file",
    "JPEG, PNG, TIFF, BMP, WebP, HEIC/HEIF or AVIF image.",
    other={
        "application/octet-stream": {
            "schema": {**BINARY, "description": "Raw pixels (query width, height, format=rgb8|l8|bayer_rg8) or an image file's bytes."}
        }
    },
)
BATCH_BODY = request_body("archive", "ZIP of images; one job per image.", ("mask_weight", "gate"))
SEGMENT_BODY = request_body(
    "file",
    "The image.",
    ("gate",),
    other={
        "application/x-www-form-urlencoded": {
            "schema": {"type": "string", "description": "The image file, base64-encoded (as Roboflow clients send it)."}
        },
        "application/octet-stream": {"schema": BINARY},
    },
)
FORMS = ("json", "png", "mask", "heatmap", "csv", "las")
DEPTH_FORMS = {"csv": "text/csv", "las": "text/plain"}  # the depth log, for jobs submitted with depths
PREDICT_RESPONSES = {**documented(JobAccepted, 202), **ERRORS}
BATCH_RESPONSES = {**documented(BatchAccepted, 202), **ERRORS}
SEGMENT_RESPONSES = {**documented(SegmentResult), **ERRORS}
JOB_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"model": JobStatus, "content": {"image/png": {}}}, **ERRORS}
READY_RESPONSES: dict[int | str, dict[str, Any]] = {**documented(Ready), 503: {"model": ErrorResponse}}
ARTIFACTS = {"png": overlay_key, "mask": mask_key, "heatmap": heatmap_key}
KEEPALIVE_S = 2.0
JOB_FIELDS = ("mask_weight", "gate", "top_depth", "bottom_depth", "depth_unit", "columns", "layout")  # a job's options, form or query
MODEL_ALIASES = ("lithoseg",)  # model names POST /{model}/{version} accepts besides the served model's own
MAX_WAIT_S = 60.0


FORM_OVERHEAD = 64 * 1024  # a multipart body's boundaries, headers and text fields, beyond the file itself


def capped(request: Request, max_upload_bytes: int) -> Request:
    """The request, its body cut off with `PayloadTooLarge` as soon as more than the upload limit
    (and the form's overhead) has arrived: the multipart parser would otherwise spool a body of any
    size (chunked, with no Content-Length) to disk before the file's size could be checked."""
    limit = max_upload_bytes + FORM_OVERHEAD
    received = 0

    async def receive() -> Any:
        nonlocal received
        message = await request.receive()
        if message.get("type") == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(f"The upload is larger than the limit of {max_upload_bytes:,} bytes.")
        return message

    return Request(request.scope, receive)


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower case."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


# Routes and middleware of the app itself come before the class: `@serve.ingress` freezes a copy
# of the app as it is when the class is decorated, so anything added after it would be lost.
STATIC = Path(__file__).resolve().parent / "static"
# (folder, file) -> media type: the only files served from STATIC, with their cache lifetime
STATIC_ASSETS = {
    ("swagger-ui", "swagger-ui-bundle.js"): "text/javascript",
    ("swagger-ui", "swagger-ui.css"): "text/css",
    ("swagger-ui", "favicon-32x32.png"): "image/png",
    ("app", "app.js"): "text/javascript",
    ("app", "app.css"): "text/css",
}
CACHE_CONTROL = {"swagger-ui": "public, max-age=86400", "app": "no-cache"}  # the page's own files revalidate (ETag)


@app.get("/", include_in_schema=False)
async def page() -> Response:
    """The web page: upload photos, follow the jobs, look at the result (deployments/static/app)."""
    return FileResponse(STATIC / "app" / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@app.get("/docs", include_in_schema=False)
async def docs() -> Response:
    """Swagger UI from the project's copy of its assets: `/docs` works offline."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="lithoseg API",
        swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
    )


@app.get("/static/{folder}/{name}", include_in_schema=False)
async def static_asset(folder: str, name: str) -> Response:
    """One of the page's or Swagger UI's files (an allowlist; anything else is 404)."""
    media = STATIC_ASSETS.get((folder, name))
    if media is None:
        raise JobNotFound(f"There is no file {folder[:40]}/{name[:80]} here.")
    return FileResponse(STATIC / folder / name, media_type=media, headers={"Cache-Control": CACHE_CONTROL[folder]})


@app.middleware("http")
async def count_requests(request: Request, call_next: Any) -> Response:
    """Count every answer by method, route and status, and add the security headers."""
    response: Response = await call_next(request)
    response.headers.update(security_headers(request.url.path))
    route = request.scope.get("route")
    http_metrics.METRICS.requests.labels(request.method, getattr(route, "path", "unmatched"), str(response.status_code)).inc()
    return response


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256)
@serve.ingress(app)
class Ingress:
    """The HTTP API: keys and limits, upload probe, job submission to the tracker, results from the store."""

    def __init__(self, settings: Settings, runner: DeploymentHandle, segmenter: DeploymentHandle, tracker: TrackerRef) -> None:
        self.settings = settings
        self.keys = KeyRing(settings.api_key_list())
        self.store = open_store(settings.store_url, settings.s3_endpoint_url)
        self.segmenter = segmenter
        self.runner = runner
        self.tracker = tracker.start(settings, runner, segmenter)
        self._keepalive = asyncio.get_running_loop().create_task(self._keep_tracker_running())
        if not self.keys:
            logger.warning("No API keys configured (LITHOSEG_API_KEYS): every request will be refused.")

    async def _keep_tracker_running(self) -> None:
        """Pings the tracker so that, after a restart, it resumes its queue without waiting for a request."""
        while True:
            try:
                await self.tracker.ping.remote()
            except Exception:  # the tracker is restarting; Ray retries, we just try again
                logger.warning("JobTracker did not answer a ping", exc_info=True)
            await asyncio.sleep(KEEPALIVE_S)

    async def _authorize(self, request: Request) -> str:
        """The owner of a valid key, within the key's rate limit (counted by the tracker, so the
        limit holds across every Ingress replica)."""
        owner = self.keys.check(request.headers.get(API_KEY_HEADER) or request.query_params.get("api_key"))
        if self.settings.rate_limit_per_minute > 0:
            retry_after = await self.tracker.admit.remote(owner)
            if retry_after is not None:
                raise RateLimited(
                    f"Too many requests: the limit is {self.settings.rate_limit_per_minute} a minute per API key; retry shortly.",
                    retry_after=retry_after,
                )
        return owner

    async def _job(self, job_id: str, owner: str) -> dict[str, Any]:
        canonical = parse_job_id(job_id)
        if canonical is None:
            raise JobNotFound(f"The job id {job_id[:64]!r} is not valid; job ids are UUIDs as returned by POST /predict.")
        job = await self.tracker.get.remote(canonical, owner)
        if job is None:
            raise JobNotFound(f"There is no job {canonical}.")
        return job

    async def _read_body(self, request: Request, limit: int) -> bytes:
        """The request body, refused as soon as it exceeds `limit` bytes (declared or streamed)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"The upload is {int(declared):,} bytes; the limit is {limit:,} bytes.")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The upload is larger than the limit of {limit:,} bytes.")
            chunks.append(chunk)
        return b"".join(chunks)

    def _job_options(self, fields: dict[str, str]) -> tuple[float, bool, dict[str, Any] | None]:
        """(mask_weight, gate, depth) from the form fields or query parameters."""
        depth = DepthSpec.parse(dict(fields))
        return (
            parse_mask_weight(fields.get("mask_weight"), self.settings.default_mask_weight),
            parse_bool("gate", fields.get("gate"), True),
            depth.to_dict() if depth else None,
        )

    async def _read_form(self, request: Request, field: str, what: str) -> tuple[bytes, str | None, dict[str, str]]:
        """(file bytes, file name, text fields) of a multipart upload whose file is in `field`."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_upload_bytes + FORM_OVERHEAD:
            raise PayloadTooLarge(f"The upload is {int(declared):,} bytes; the limit is {self.settings.max_upload_bytes:,} bytes.")
        try:
            form = await capped(request, self.settings.max_upload_bytes).form(max_files=1, max_fields=16)
        except PayloadTooLarge:
            raise
        except Exception as exc:  # malformed multipart bodies raise a variety of parser errors
            reason = str(getattr(exc, "detail", None) or getattr(exc, "message", None) or exc)
            if reason.startswith("Too many files"):
                raise BadRequest(
                    f"Send one {what} per request, in field `{field}`; several images go in one ZIP archive to POST /predict/batch."
                ) from exc
            if reason.startswith("Too many fields"):
                raise BadRequest(
                    f"The form has too many fields; send the {what} in `{field}` and at most {', '.join(JOB_FIELDS)}."
                ) from exc
            raise BadRequest("The multipart/form-data body could not be parsed.") from exc
        upload = form.get(field)
        if upload is None:
            raise BadRequest(f"The request has no `{field}` field; send the {what} as multipart/form-data field `{field}`.")
        if not isinstance(upload, UploadFile):
            raise BadRequest(f"The `{field}` field must be a file upload, not a text value.")
        data = await upload.read(self.settings.max_upload_bytes + 1)
        if len(data) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(f"The upload is larger than the limit of {self.settings.max_upload_bytes:,} bytes.")
        fields = {}
        for name in JOB_FIELDS:
            value = form.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidParameterError(f"The {name} must be sent as a form field, not a file.")
            if value is not None:
                fields[name] = value
        return data, upload.filename, fields

    async def _read_image(self, request: Request, base64_body: bool = False) -> tuple[bytes, str | None, dict[str, str], RawSpec | None]:
        """An image from any of the accepted request shapes: multipart `file`; a raw pixel buffer
        (`application/octet-stream` with `width` and `height`); an image file's bytes as the body
        (`application/octet-stream` or `image/*`); with `base64_body`, base64 text as the body."""
        content_type = media_type(request)
        query = request.query_params
        fields = {k: query[k] for k in JOB_FIELDS if k in query}
        if content_type == "multipart/form-data":
            data, filename, form_fields = await self._read_form(request, "file", "image")
            return data, filename, {**fields, **form_fields}, None
        if content_type == "application/octet-stream" or content_type.startswith("image/"):
            spec = raw_spec(query)
            limit = (
                max(self.settings.max_upload_bytes, spec.nbytes)
                if spec and spec.nbytes <= self.settings.max_pixels * 3
                else self.settings.max_upload_bytes
            )
            return await self._read_body(request, limit), query.get("name"), fields, spec
        if base64_body:
            text = await self._read_body(request, self.settings.max_upload_bytes * 4 // 3 + 64 * 1024)
            return decode_base64_body(text), query.get("name"), fields, None
        raise UnsupportedMedia(
            "Send the image as multipart/form-data field `file`, or as the body with Content-Type application/octet-stream "
            "(raw pixels need the width, height and format query parameters)."
        )

    def _probe(self, data: bytes, spec: RawSpec | None) -> ImageInfo:
        return check_raw(len(data), spec, self.settings.max_pixels) if spec else probe_image(data, self.settings.max_pixels)

    async def _submit(
        self,
        owner: str,
        data: bytes,
        info: ImageInfo,
        filename: str | None,
        mask_weight: float,
        gate: bool,
        spec: RawSpec | None,
        idempotency_key: str | None = None,
        depth: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        job_id = new_job_id()
        await asyncio.to_thread(self.store.put, upload_key(job_id), data)
        image = {"format": info.format, "width": info.width, "height": info.height, "mode": info.mode}
        try:
            job, created = await self.tracker.submit.remote(
                job_id, owner, mask_weight, idempotency_key, filename, image, gate, spec.to_dict() if spec else None, depth
            )
        except Exception:
            await asyncio.to_thread(self.store.delete, upload_key(job_id))
            raise
        if not created:  # lost an idempotency race: keep the first job
            await asyncio.to_thread(self.store.delete, upload_key(job_id))
        http_metrics.METRICS.submitted.inc()
        return job, created

    # -- the reference contract ------------------------------------------------------------------

    @app.post(
        "/predict",
        status_code=202,
        responses=PREDICT_RESPONSES,
        openapi_extra=PREDICT_BODY,
        summary="Submit an image for segmentation",
    )
    async def predict(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        owner = await self._authorize(request)
        data, filename, fields, spec = await self._read_image(request)
        mask_weight, gate, depth = self._job_options(fields)
        idempotency_key = request.headers.get("idempotency-key") or None
        if idempotency_key:
            existing = await self.tracker.find_idempotent.remote(owner, idempotency_key)
            if existing is not None:
                return JSONResponse({"job_id": existing["job_id"], "status": existing["status"]}, status_code=200)
        info = await asyncio.to_thread(self._probe, data, spec)
        job, created = await self._submit(owner, data, info, filename, mask_weight, gate, spec, idempotency_key, depth)
        http_metrics.METRICS.latency.labels("POST", "/predict").observe(time.perf_counter() - started)
        return JSONResponse({"job_id": job["job_id"], "status": job["status"]}, status_code=202 if created else 200)

    @app.post(
        "/predict/batch",
        status_code=202,
        responses=BATCH_RESPONSES,
        openapi_extra=BATCH_BODY,
        summary="Submit a ZIP of images, one job each",
    )
    async def predict_batch(self, request: Request) -> JSONResponse:
        owner = await self._authorize(request)  # the whole batch counts as one request
        if media_type(request) != "multipart/form-data":
            raise UnsupportedMedia("POST /predict/batch expects multipart/form-data with a ZIP archive in the field `archive`.")
        data, _, fields = await self._read_form(request, "archive", "ZIP archive")
        mask_weight, gate, depth = self._job_options(fields)
        if depth is not None:
            raise InvalidParameterError("Depths belong to one photo: submit each box photo with its depths to POST /predict.")
        contents = await asyncio.to_thread(
            read_archive, data, self.settings.batch_max_entries, self.settings.max_upload_bytes, self.settings.batch_max_total_bytes
        )
        jobs, skipped = [], list(contents.skipped)
        for name, body in contents.images:
            try:
                info = await asyncio.to_thread(probe_image, body, self.settings.max_pixels)
            except InputError as exc:
                skipped.append({"name": name, "reason": str(exc)})
                continue
            job, _ = await self._submit(owner, body, info, name, mask_weight, gate, None)
            jobs.append({"name": name, "job_id": job["job_id"], "status": job["status"]})
        logger.info("Batch of %d entries: %d jobs, %d skipped", len(contents.images) + len(contents.skipped), len(jobs), len(skipped))
        return JSONResponse({"jobs": jobs, "skipped": skipped}, status_code=202 if jobs else 200)

    @app.post(
        "/segment",
        responses=SEGMENT_RESPONSES,
        openapi_extra=SEGMENT_BODY,
        summary="Segment a small image synchronously (Roboflow-style response)",
    )
    async def segment(self, request: Request) -> JSONResponse:
        await self._authorize(request)
        if request.query_params.get("image"):
            raise BadRequest(
                "Fetching images by URL is not supported; send the image itself, base64-encoded in the body or as multipart field `file`."
            )
        confidence = parse_confidence(request.query_params.get("confidence"))
        data, _, fields, spec = await self._read_image(request, base64_body=True)
        gate = parse_bool("gate", fields.get("gate"), True)
        info = await asyncio.to_thread(self._probe, data, spec)
        if info.pixels > self.settings.segment_max_pixels:
            raise ImageTooLargeError(
                f"POST /segment takes images up to {self.settings.segment_max_pixels:,} "
                f"pixels; this one has {info.pixels:,}. Submit it to POST /predict instead."
            )
        out = await self.runner.segment_now.remote(data, spec.to_dict() if spec else None, confidence, gate)
        summary = out["summary"]
        body = {
            "segmentation_mask": base64.b64encode(out["mask_png"]).decode("ascii"),
            "class_map": summary["class_map"],
            "image": {"width": summary["image"]["width"], "height": summary["image"]["height"]},
            "confidence": confidence,
            **{k: summary[k] for k in ("detected_classes", "coverage", "rock_fraction", "rejected", "rejection_reason", "core_score")},
            "class_validation": summary.get("class_validation", {}),
        }
        return JSONResponse(body)

    @app.get("/job/{job_id}", responses=JOB_RESPONSES, summary="Job status and result")
    async def job(self, job_id: str, request: Request, form: str = "json", wait: float = 0.0) -> Response:
        """`wait` (seconds, up to 60): long poll, answer as soon as the job has ended."""
        owner = await self._authorize(request)
        if form not in FORMS:
            raise BadRequest(f"The form parameter must be one of {', '.join(FORMS)}; got {form[:20]!r}.")
        if not (0.0 <= wait <= MAX_WAIT_S):  # also false for NaN
            raise InvalidParameterError(f"The wait parameter must be between 0 and {MAX_WAIT_S:.0f} seconds; got {wait}.")
        job = await self._job(job_id, owner)
        if wait > 0 and job["status"] not in TERMINAL:
            job = await self.tracker.wait.remote(job["job_id"], owner, wait) or job
        if job["status"] != "finished":
            return JSONResponse(job)
        if form in ARTIFACTS:
            return Response(await self._artifact(ARTIFACTS[form](job["job_id"], job.get("attempt") or 0)), media_type="image/png")
        if form in DEPTH_FORMS:
            return self._depth_form(job, form)
        overlay_png = await self._artifact(overlay_key(job["job_id"], job.get("attempt") or 0))
        job["result"] = {**job["result"], "base64": base64.b64encode(overlay_png).decode("ascii")}
        return JSONResponse(job)

    def _depth_form(self, job: dict[str, Any], form: str) -> Response:
        """The finished job's depth log as CSV (from, to, unit, lithology, confidence) or LAS 2.0."""
        log = (job.get("result") or {}).get("depth_log")
        if not log:
            raise BadRequest(f"Job {job['job_id']} was submitted without top_depth and bottom_depth, so it has no log in depth.")
        body = to_csv(log) if form == "csv" else to_las(log, default_class_table(), well=job["job_id"])
        filename = f"{job['job_id']}.{form}"
        return Response(body, media_type=DEPTH_FORMS[form], headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    async def _artifact(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self.store.get, key)
        except ObjectNotFound:
            raise JobNotFound("The job's result is no longer stored; results are kept for a limited time.") from None

    @app.delete("/job/{job_id}", responses=ERRORS, summary="Cancel a job and delete its data")
    async def delete_job(self, job_id: str, request: Request) -> JSONResponse:
        owner = await self._authorize(request)
        canonical = parse_job_id(job_id)
        outcome = await self.tracker.cancel.remote(canonical, owner) if canonical else None
        if outcome is None:
            await self._job(job_id, owner)  # raises the right 404
        return JSONResponse(outcome)

    # -- operations ------------------------------------------------------------------------------

    @app.get("/health", responses=documented(Health), summary="Liveness")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        responses=READY_RESPONSES,
        summary="Readiness: model loaded, store and tracker reachable",
    )
    async def ready(self) -> dict[str, Any]:
        try:
            model, stats, _ = await asyncio.wait_for(
                asyncio.gather(self.segmenter.info.remote(), self.tracker.ping.remote(), asyncio.to_thread(self.store.ping)), timeout=10
            )
        except Exception as exc:
            raise ServiceUnavailable(f"Not ready: {type(exc).__name__}: {str(exc)[:200]}") from exc
        return {"ready": True, "model": {k: model[k] for k in ("name", "version", "device")}, "queue": stats["queued"]}

    @app.get("/drift", summary="Rolling statistics of recent results against a reference window, with an alarm")
    async def drift(self, request: Request) -> dict[str, Any]:
        """Core score, mean confidence, rock fraction and each class's share of the rock over the
        last `LITHOSEG_DRIFT_WINDOW` finished jobs, against the first as many after start or after
        a model change; `alarm` when one has moved more than `LITHOSEG_DRIFT_THRESHOLD` standard
        errors. Needs a key: it describes the service's traffic."""
        await self._authorize(request)
        return dict(await self.tracker.drift.remote())

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_endpoint(self) -> Response:
        try:
            stats = await asyncio.wait_for(self.tracker.ping.remote(), timeout=5)
        except Exception:
            stats = None
        return Response(http_metrics.METRICS.render(stats), media_type="text/plain; version=0.0.4")

    # Last among the routes: it would match /predict/batch and any other two-segment POST.
    @app.post(
        "/{model_name}/{version}",
        responses=SEGMENT_RESPONSES,
        openapi_extra=SEGMENT_BODY,
        summary="POST /segment under Roboflow's hosted-model URL: /{model}/{version}?api_key=...",
    )
    async def segment_model_version(self, model_name: str, version: str, request: Request) -> JSONResponse:
        """What `POST /segment` answers, at the URL shape Roboflow's hosted segmentation clients
        post to, so they work by changing only the host. The model is `lithoseg` or the served
        model's name; the version its version or `latest`."""
        info = await self.segmenter.info.remote()
        if model_name not in MODEL_ALIASES + (info["name"],) or version not in (str(info["version"]), "latest"):
            raise ModelNotFound(
                f"There is no model {model_name!r} version {version!r} here; this service segments with "
                f"{info['name']} version {info['version']} (also reachable as lithoseg/{info['version']} and lithoseg/latest)."
            )
        return await self.segment(request)
