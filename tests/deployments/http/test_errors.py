"""The error table in-process: every kind of error becomes its status and one English sentence."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from deployments.http import errors as http_errors
from deployments.jobs import QueueFullError
from pipelines.archive import ArchiveError
from pipelines.errors import CheckpointError, EmptyUploadError, ImageTooLargeError, InputError, InvalidParameterError, UnsupportedImageError
from storage.errors import InvalidKey, ObjectNotFound, StoreUnavailable


def request(method: str = "POST", path: str = "/predict") -> Request:
    return Request({"type": "http", "method": method, "path": path, "headers": [], "query_string": b""})


def answer(handler, exc: Exception, method: str = "POST", path: str = "/predict") -> tuple[int, str, str | None]:
    response = asyncio.run(handler(request(method, path), exc))
    return response.status_code, json.loads(response.body)["detail"], response.headers.get("retry-after")


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (http_errors.BadRequest("Send one image per request."), 400, None),
        (http_errors.Unauthorized("The API key is missing or wrong."), 401, None),
        (http_errors.JobNotFound("There is no job abc."), 404, None),
        (http_errors.PayloadTooLarge("The upload is over 64 MiB."), 413, None),
        (http_errors.UnsupportedMedia("That is not an image."), 415, None),
        (http_errors.RateLimited("Too many requests.", retry_after=7), 429, "7"),
        (http_errors.ServiceUnavailable("The store is down."), 503, "5"),
        (EmptyUploadError("The upload is empty."), 400, None),
        (ImageTooLargeError("The image has too many pixels."), 413, None),
        (UnsupportedImageError("GIF is not supported."), 415, None),
        (InvalidParameterError("The mask_weight must be a number in [0, 1]."), 422, None),
        (InputError("The ZIP cannot be read."), 400, None),
        (QueueFullError("The queue is full."), 503, "10"),
        (StoreUnavailable("The store did not answer."), 503, "5"),
        (ObjectNotFound("No such object."), 503, "5"),  # a store error reaching the table is the store's fault, not the caller's
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_each_error_has_its_status(error, status, retry_after):
    got_status, detail, got_retry = answer(http_errors.handle_exception, error)
    assert (got_status, got_retry) == (status, retry_after)
    assert detail[0].isupper() and detail.endswith(".")


def test_a_subclass_inherits_its_parents_status():
    class OddZip(InputError):
        pass

    assert answer(http_errors.handle_exception, OddZip("The archive is odd."))[0] == 400
    if issubclass(ArchiveError, InputError):
        assert answer(http_errors.handle_exception, ArchiveError("The ZIP is encrypted."))[0] == 400
    assert answer(http_errors.handle_exception, InvalidKey("Bad key."))[0] == 503


def test_an_unexpected_error_is_a_logged_500_that_tells_nothing(caplog):
    http_errors.logger.addHandler(caplog.handler)  # Ray's logger does not propagate to the root
    try:
        status, detail, _ = answer(http_errors.handle_exception, KeyError("secret internals"))
    finally:
        http_errors.logger.removeHandler(caplog.handler)
    assert status == 500 and "secret" not in detail and detail.endswith(".")
    assert any("Unhandled error on POST /predict" in r.message for r in caplog.records)
    assert answer(http_errors.handle_exception, CheckpointError("The checkpoint is broken."))[0] == 500


def test_framework_errors_are_sentences_too():
    status, detail, _ = answer(http_errors.handle_http_exception, HTTPException(404), "GET", "/nope")
    assert (status, detail) == (404, "There is no endpoint GET /nope.")
    status, detail, _ = answer(http_errors.handle_http_exception, HTTPException(405), "PUT", "/predict")
    assert (status, detail) == (405, "PUT is not allowed on /predict.")
    invalid = RequestValidationError(
        [{"loc": ("query", "wait"), "msg": "Input should be less than or equal to 60", "type": "less_than_equal"}]
    )
    status, detail, _ = answer(http_errors.handle_validation_error, invalid, "GET", "/job/x")
    assert status == 422 and detail == "The request is not valid: wait: Input should be less than or equal to 60."
