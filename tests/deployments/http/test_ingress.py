"""The Ingress in-process: its FastAPI app under Starlette's TestClient, the Ingress class built
without Ray with stand-in handles (a runner that renders a fixed result, a Segmenter that
describes the shipped model) and the real JobTracker class behind a stand-in actor handle. The
HTTP contract without a Ray cluster: routes, keys, limits, errors, headers, idempotency."""

from __future__ import annotations

import asyncio
import inspect
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from deployments.ingress import Ingress, app
from deployments.jobs import heatmap_key, mask_key, overlay_key
from deployments.settings import DEFAULT_MODEL, Settings
from deployments.tracker import JobTracker
from pipelines.model import read_config
from pipelines.png import encode_png
from storage import StoreUnavailable

KEY, OTHER = "in-process-key-0001", "in-process-key-0002"
IngressClass = next(c for c in Ingress.func_or_class.__mro__[1:] if c.__name__ == "Ingress")  # the class under Serve's wrapper
TrackerClass = JobTracker.__ray_actor_class__


def png(height: int = 64, width: int = 96) -> bytes:
    return encode_png(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8))


class Method:
    """`handle.method.remote(...)`: the call, as an awaitable."""

    def __init__(self, function: Any) -> None:
        self.function = function

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        result = self.function(*args, **kwargs)
        if inspect.isawaitable(result) or inspect.isasyncgen(result):
            return result

        async def value() -> Any:
            return result

        return value()


class Handle:
    """A stand-in deployment or actor handle over a plain object."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def options(self, **_: Any) -> Handle:
        return self

    def __getattr__(self, name: str) -> Method:
        return Method(getattr(self._target, name))


class StandInSegmenter:
    def info(self) -> dict[str, Any]:
        config = read_config(DEFAULT_MODEL)
        return {"key": str(DEFAULT_MODEL), "name": config.name, "version": config.version, "device": "cpu",
                "tile_size": config.tile_size, "tile_overlap": config.tile_overlap, "output_stride": config.output_stride,
                "max_short_side": config.max_short_side, "scales": config.scales, "classes": config.classes}  # fmt: skip


class StandInRunner:
    """Renders every job as the same small result, writing its PNGs where the Compositor would."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def run(self, job_id: str, options: dict[str, Any]):  # type: ignore[no-untyped-def]
        yield {"progress": [1, 1]}
        for key in (overlay_key, mask_key, heatmap_key):
            self.store.put(key(job_id, options["attempt"]), png(8, 8))
        yield {"result": {"coverage": {"background": 1.0}, "detected_classes": {}, "rock_fraction": 0.0, "rejected": False,
                          "core_score": 0.9, "mean_confidence": 0.5}}  # fmt: skip

    def segment_now(self, data: bytes, raw: Any, confidence: float, gate: bool) -> dict[str, Any]:
        summary = {"class_map": {"0": "background"}, "image": {"width": 96, "height": 64}, "detected_classes": {},
                   "coverage": {"background": 1.0}, "rock_fraction": 0.0, "rejected": False, "rejection_reason": None,
                   "core_score": 0.9}  # fmt: skip
        return {"mask_png": png(8, 8), "summary": summary}


class StandInTrackerRef:
    """What `TrackerRef.start` gives the Ingress: here the real tracker class, in this process."""

    def __init__(self, fail_submits: bool = False) -> None:
        self.fail_submits = fail_submits
        self.tracker: Any = None

    def start(self, settings: Settings, runner: Any, segmenter: Any) -> Handle:
        self.tracker = TrackerClass(settings, runner, segmenter)
        if self.fail_submits:

            async def refuse(*_: Any) -> None:
                raise StoreUnavailable("S3 put jobs/x/record.json failed: the endpoint cannot be reached.")

            self.tracker.submit = refuse
        return Handle(self.tracker)


class Replica:
    """What serve.get_replica_context() gives the class-based routes: the servable object."""

    def __init__(self, servable: Any) -> None:
        self.servable_object = servable


def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_submits: bool = False, **settings: Any) -> Iterator[TestClient]:
    from ray import serve as ray_serve

    config = Settings(**{"api_keys": f"{KEY},{OTHER}", "store_url": (tmp_path / "store").as_uri(), "rate_limit_per_minute": 0, **settings})
    ref = StandInTrackerRef(fail_submits)
    with TestClient(app) as client:

        async def build() -> Any:  # in the client's event loop, where the Ingress's own tasks will run
            from storage import open_store

            runner = StandInRunner(open_store(config.store_url))
            return IngressClass(config, Handle(runner), Handle(StandInSegmenter()), ref)

        ingress = client.portal.call(build)
        monkeypatch.setattr(ray_serve, "get_replica_context", lambda: Replica(ingress))
        yield client
        client.portal.call(stop_tasks, ingress, ref)


async def stop_tasks(ingress: Any, ref: StandInTrackerRef) -> None:
    tracker = ref.tracker
    tasks = [ingress._keepalive, tracker._background, tracker._model_watch, *tracker.running.values()]
    for task in [t for t in tasks if t is not None]:
        task.cancel()
    await asyncio.sleep(0)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    yield from serve(tmp_path, monkeypatch)


def submit(client: TestClient, data: bytes, key: str = KEY, **headers: str) -> Any:
    return client.post("/predict", headers={"api-key": key, **headers}, files={"file": ("core.png", data)})


def test_a_job_goes_from_submit_to_its_result_in_every_form(client: TestClient):
    accepted = submit(client, png())
    assert accepted.status_code == 202 and accepted.json()["status"] == "queued"
    job_id = accepted.json()["job_id"]
    done = client.get(f"/job/{job_id}", params={"wait": 10}, headers={"api-key": KEY}).json()
    assert done["status"] == "finished" and done["attempt"] == 1 and done["progress"] == "1/1"
    assert done["result"]["base64"]  # the overlay, inline, as the reference client expects
    for form in ("png", "mask", "heatmap"):
        answer = client.get(f"/job/{job_id}", params={"form": form}, headers={"api-key": KEY})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png" and answer.content == png(8, 8)
    assert client.get(f"/job/{job_id}", headers={"api-key": OTHER}).status_code == 404  # another key's job does not exist
    no_depth = client.get(f"/job/{job_id}", params={"form": "csv"}, headers={"api-key": KEY})
    assert no_depth.status_code == 400 and "without top_depth" in no_depth.json()["detail"]


@pytest.mark.parametrize(
    ("request_args", "status", "words"),
    [
        ({"method": "POST", "url": "/predict", "files": {"file": ("a.png", b"x")}}, 401, "Missing API key"),
        ({"method": "POST", "url": "/predict", "headers": {"api-key": "wrong"}, "files": {"file": ("a.png", b"x")}}, 401, "not valid"),
        (
            {"method": "POST", "url": "/predict", "headers": {"api-key": KEY}, "files": {"file": ("a.txt", b"plain words")}},
            415,
            "not an image",
        ),
        ({"method": "POST", "url": "/predict", "headers": {"api-key": KEY}, "files": {"file": ("a.png", b"")}}, 400, "empty"),
        (
            {"method": "POST", "url": "/predict", "headers": {"api-key": KEY, "content-type": "text/plain"}, "content": b"x"},
            415,
            "multipart",
        ),
        ({"method": "GET", "url": "/job/not-a-uuid", "headers": {"api-key": KEY}}, 404, "not valid"),
        ({"method": "GET", "url": "/job/3f1c3a38-2f8b-4c55-9d0f-0f3f9a1d6e10", "headers": {"api-key": KEY}}, 404, "There is no job"),
        (
            {"method": "GET", "url": "/job/3f1c3a38-2f8b-4c55-9d0f-0f3f9a1d6e10?form=tiff", "headers": {"api-key": KEY}},
            400,
            "form parameter",
        ),
        ({"method": "GET", "url": "/job/3f1c3a38-2f8b-4c55-9d0f-0f3f9a1d6e10?wait=nan", "headers": {"api-key": KEY}}, 422, "wait"),
        ({"method": "POST", "url": "/lithoseg/999?api_key=" + KEY, "content": b"aGVsbG8="}, 404, "no model"),
        ({"method": "GET", "url": "/static/app/secrets.py"}, 404, "There is no file"),
    ],
    ids=[
        "no-key",
        "wrong-key",
        "not-an-image",
        "empty",
        "wrong-media",
        "bad-id",
        "no-such-job",
        "bad-form",
        "nan-wait",
        "no-model",
        "no-file",
    ],
)
def test_errors_are_the_error_tables_sentences(client: TestClient, request_args: dict[str, Any], status: int, words: str):
    answer = client.request(**request_args)
    detail = answer.json()["detail"]
    assert answer.status_code == status and words in detail, (answer.status_code, detail)
    assert isinstance(detail, str) and detail[:1].isupper() and detail.rstrip().endswith((".", ")"))
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_an_upload_over_the_limit_is_refused_by_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for client in serve(tmp_path, monkeypatch, max_upload_bytes=10_000):
        assert submit(client, png(200, 200)).status_code == 413
        raw = client.post("/predict", headers={"api-key": KEY, "content-type": "application/octet-stream"}, content=png(200, 200))
        assert raw.status_code == 413 and "limit" in raw.json()["detail"]


def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for client in serve(tmp_path, monkeypatch, rate_limit_per_minute=2):
        statuses = [client.get("/drift", headers={"api-key": KEY}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = client.get("/drift", headers={"api-key": KEY})
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get("/drift", headers={"api-key": OTHER}).status_code == 200  # per key


def test_a_store_that_fails_on_submit_is_a_503_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for client in serve(tmp_path, monkeypatch, fail_submits=True):
        answer = submit(client, png())
        assert answer.status_code == 503 and int(answer.headers["retry-after"]) > 0
        assert answer.json()["detail"].startswith("S3 put")
        assert not any((tmp_path / "store").rglob("upload"))  # the upload written before the refusal was removed


def test_the_same_idempotency_key_gives_the_same_job(client: TestClient):
    first = submit(client, png(), **{"Idempotency-Key": "retry-1"})
    again = submit(client, png(), **{"Idempotency-Key": "retry-1"})
    other_key = submit(client, png(), key=OTHER, **{"Idempotency-Key": "retry-1"})
    assert (first.status_code, again.status_code, other_key.status_code) == (202, 200, 202)
    assert first.json()["job_id"] == again.json()["job_id"] != other_key.json()["job_id"]


def test_segment_answers_in_roboflows_shape_and_the_page_is_served(client: TestClient):
    import base64

    answer = client.post("/segment", params={"api_key": KEY}, content=base64.b64encode(png()))
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) >= {"segmentation_mask", "class_map", "image", "coverage", "confidence"}
    assert body["image"] == {"width": 96, "height": 64} and body["confidence"] == 0.5  # the default 50 %
    page = client.get("/")
    assert page.status_code == 200 and "<title>lithoseg" in page.text
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] is True and ready["model"]["device"] == "cpu"
    metrics = client.get("/metrics").text
    assert 'lithoseg_http_requests_total{method="POST",route="/segment",status="200"}' in metrics
    image = io.BytesIO(base64.b64decode(body["segmentation_mask"]))
    assert image.read(8) == b"\x89PNG\r\n\x1a\n"
