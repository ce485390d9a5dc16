"""The one place where errors become HTTP responses.

    ApiError (raised by the ingress itself)
    ├── BadRequest          400
    ├── Unauthorized        401
    ├── JobNotFound         404
    ├── ModelNotFound       404
    ├── PayloadTooLarge     413
    ├── UnsupportedMedia    415
    ├── RateLimited         429 (Retry-After)
    └── ServiceUnavailable  503 (Retry-After)

Errors from `pipelines` and `storage` are mapped by the table below, walking the exception's MRO,
so a new subclass inherits its parent's status. Every body is `{"detail": "<sentence>"}`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments.http.remote_errors import sentence_of
from deployments.jobs import QueueFullError
from pipelines.errors import EmptyUploadError, ImageTooLargeError, InputError, InvalidParameterError, UnsupportedImageError
from storage.errors import StoreError

logger = logging.getLogger("ray.serve")


class ErrorResponse(BaseModel):
    """Every error's body: one English sentence."""

    detail: str


class ApiError(Exception):
    """An error the Ingress raises itself, with its HTTP status (and Retry-After, for 429 and 503)."""

    status_code = 500
    retry_after: int | None = None

    def __init__(self, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if retry_after is not None:
            self.retry_after = retry_after


class BadRequest(ApiError):
    """400: the request is malformed or a parameter is out of range."""

    status_code = 400


class Unauthorized(ApiError):
    """401: no API key, or one that is not configured."""

    status_code = 401


class JobNotFound(ApiError):
    """404: no such job for this key (or no such file)."""

    status_code = 404


class ModelNotFound(ApiError):
    """404: the model or version named in the URL is not the one served."""

    status_code = 404


class PayloadTooLarge(ApiError):
    """413: the upload is over the byte limit."""

    status_code = 413


class UnsupportedMedia(ApiError):
    """415: the request's content type is not one the route takes."""

    status_code = 415


class RateLimited(ApiError):
    """429: over the key's rate limit; Retry-After says when to come back."""

    status_code = 429
    retry_after = 1


class ServiceUnavailable(ApiError):
    """503: not ready, the queue is full or the store failed; Retry-After says when to come back."""

    status_code = 503
    retry_after = 5


STATUS_BY_ERROR: dict[type[Exception], tuple[int, int | None]] = {
    EmptyUploadError: (400, None),
    ImageTooLargeError: (413, None),
    UnsupportedImageError: (415, None),
    InvalidParameterError: (422, None),
    InputError: (400, None),  # any other input problem (e.g. an unreadable ZIP)
    QueueFullError: (503, 10),
    StoreError: (503, 5),
}


def _response(status: int, detail: str, retry_after: int | None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(ErrorResponse(detail=detail).model_dump(), status_code=status, headers=headers)


async def handle_exception(request: Request, exc: Exception) -> JSONResponse:
    """Any exception in the table (by MRO) or an ApiError as its status and sentence; logged, never a traceback to the client."""
    if isinstance(exc, ApiError):
        status, retry_after, detail = exc.status_code, exc.retry_after, exc.detail
    else:
        for klass in type(exc).__mro__:
            if klass in STATUS_BY_ERROR:
                status, retry_after = STATUS_BY_ERROR[klass]
                detail = sentence_of(exc, type(exc).__name__)
                break
        else:
            logger.exception("Unhandled error on %s %s", request.method, request.url.path)
            return _response(500, "The server hit an unexpected error; the request was not processed.", None)
    log = logger.warning if status >= 500 else logger.info
    log("%s %s -> %d: %s", request.method, request.url.path, status, detail)
    return _response(status, detail, retry_after)


async def handle_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's parameter validation errors as a 422 sentence naming the parameter."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors())
    detail = f"The request is not valid: {problems}."
    logger.info("%s %s -> 422: %s", request.method, request.url.path, detail)
    return _response(422, detail, None)


async def handle_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own HTTP errors (unknown route, wrong method) as sentences."""
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail.endswith(".") else f"{exc.detail}."
    if exc.status_code == 404:
        detail = f"There is no endpoint {request.method} {request.url.path}."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    return _response(exc.status_code, detail, None)


def install(app: FastAPI) -> None:
    """Register the handlers on `app`: the one place errors become HTTP responses."""
    app.add_exception_handler(RequestValidationError, handle_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)  # type: ignore[arg-type]
    error_types: list[type[Exception]] = [ApiError, *STATUS_BY_ERROR]
    for error_type in error_types:
        app.add_exception_handler(error_type, handle_exception)
    app.add_exception_handler(Exception, handle_exception)  # last resort: a logged 500
