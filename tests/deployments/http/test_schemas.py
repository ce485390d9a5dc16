"""The documented response bodies match what the routes build, and /openapi.json shows them."""

from __future__ import annotations

import numpy as np

from deployments.http.schemas import JobAccepted, JobResult, JobStatus, SegmentResult
from deployments.ingress import app
from deployments.jobs import JobRecord
from pipelines.classes import default_class_table
from pipelines.render import summarize


def finished_result() -> dict:
    """A result as the JobRunner assembles it: the Compositor's summary, the gate's verdict, the model."""
    class_ids = np.zeros((60, 40), np.uint8)
    class_ids[10:50, 5:35] = 1
    class_ids[30:50, 5:35] = 5
    summary = {**summarize(class_ids, default_class_table()), "mean_confidence": 0.8, "base64": "iVBORw0KGgo="}
    gate = {"rejected": False, "rejection_reason": None, "core_score": 0.77}
    return {**summary, **gate, "model": {"name": "lithoseg-unet-efflite0", "version": "11", "tile_versions": ["11"]}}


def test_job_bodies_validate_against_their_documentation():
    record = JobRecord(job_id="c42b9cbe-81b5-4a53-8a4d-88edb8f6ff82", owner="o", seq=1, created_at=1.0, mask_weight=0.5)
    assert JobStatus.model_validate(record.public()).status == "queued"
    record.status, record.started_at, record.finished_at = "finished", 2.0, 3.0
    record.completed_tiles, record.total_tiles, record.result = 4, 4, finished_result()
    status = JobStatus.model_validate(record.public())
    assert status.result is not None and status.result.lithology_log.intervals[0].class_ == "sandstone"
    assert status.progress == "4/4"
    JobAccepted.model_validate({"job_id": record.job_id, "status": "queued"})


def test_a_result_missing_a_documented_field_is_caught():
    broken = finished_result()
    del broken["rock_fraction"]
    try:
        JobResult.model_validate(broken)
    except ValueError as exc:
        assert "rock_fraction" in str(exc)
    else:
        raise AssertionError("a result without rock_fraction validated")


def test_every_route_documents_its_answer():
    paths = app.openapi()["paths"]

    def schema(path: str, method: str, status: str) -> str:
        content = paths[path][method]["responses"][status]["content"]
        return content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]

    assert schema("/predict", "post", "202") == "JobAccepted"
    assert schema("/predict/batch", "post", "202") == "BatchAccepted"
    assert schema("/segment", "post", "200") == SegmentResult.__name__
    assert schema("/job/{job_id}", "get", "200") == "JobStatus"
    assert "image/png" in paths["/job/{job_id}"]["get"]["responses"]["200"]["content"]
    assert schema("/ready", "get", "200") == "Ready" and schema("/health", "get", "200") == "Health"
    for path, methods in paths.items():
        for method, operation in methods.items():
            if path not in ("/metrics", "/drift", "/docs", "/openapi.json"):
                assert any(code.startswith("2") for code in operation["responses"]), f"{method.upper()} {path}"
