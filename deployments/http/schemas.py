"""What every route answers, as pydantic models: `/docs` and `/openapi.json` show them.

The routes build their bodies from the job records and the Compositor's summary; these models
document those bodies (`responses=` on each route) and a test validates real bodies against them
(tests/deployments/http/test_schemas.py), so the documentation cannot drift from what comes back.
Unknown extra fields are allowed: a client written against these keeps working when one is added.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["queued", "started", "finished", "failed", "cancelled"]


class Body(BaseModel):
    """Base of the response models: they document what comes back (`/docs`), extra fields allowed."""

    model_config = ConfigDict(extra="allow")


class JobAccepted(Body):
    """`POST /predict`'s answer."""

    job_id: str = Field(description="The job's id (a UUID).")
    status: Status


class BatchEntry(Body):
    """One job of a ZIP batch."""

    name: str = Field(description="The file's name in the ZIP.")
    job_id: str
    status: Status


class SkippedEntry(Body):
    """A ZIP entry that made no job, with the reason."""

    name: str
    reason: str = Field(description="Why the entry was not made a job, as a sentence.")


class BatchAccepted(Body):
    """`POST /predict/batch`'s answer."""

    jobs: list[BatchEntry]
    skipped: list[SkippedEntry]


class Interval(Body):
    """One run of a class along the photo's long side."""

    class_: str = Field(alias="class", description="The lithology's name.")
    class_id: int
    start_px: int
    end_px: int
    start_fraction: float
    end_fraction: float


class LithologyLog(Body):
    """The lithology log in pixels along the photo's long side."""

    axis: Literal["rows", "columns"] = Field(description="The image's long axis, along which the log runs.")
    length_px: int
    intervals: list[Interval]


class ImageSize(Body):
    """The image's size in pixels, as displayed (EXIF orientation applied)."""

    height: int
    width: int


class ModelInfo(Body):
    """The model that made a result, and the version of every tile's model."""

    name: str
    version: str
    tile_versions: list[str] | None = Field(
        None, description="The model versions the job's tiles came from (one: a job is pinned to its model)."
    )


class JobResult(Body):
    """A finished job's result."""

    detected_classes: dict[str, list[int]] = Field(description="Each rock class present and its overlay colour (RGB).")
    base64: str | None = Field(None, description="The overlay PNG, base64 (in form=json only).")
    coverage: dict[str, float] = Field(description="Share of the image's pixels per class, background included.")
    rock_fraction: float
    image: ImageSize
    class_map: dict[str, str] = Field(description="Class id (as text) to name, for the mask PNG.")
    lithology_log: LithologyLog
    mean_confidence: float | None = None
    rejected: bool = Field(description="True when the content gate judged the picture not a core photo; nothing was segmented.")
    rejection_reason: str | None
    core_score: float | None = Field(description="The content gate's score, None when the gate did not run.")
    class_validation: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "For each detected class: validated_on_real_photos (true only for the classes the model was scored on with real "
            "labelled photos) and real_iou there; the other classes were learned from synthetic cores only."
        ),
    )
    model: ModelInfo
    depth_log: dict[str, Any] | None = Field(
        None, description="For a job submitted with top_depth and bottom_depth: the intervals in depth (also form=csv and form=las)."
    )


class JobStatus(Body):
    """`GET /job/{id}`: the job's status, progress and, once finished, its result."""

    job_id: str
    status: Status
    created_at: float = Field(description="Unix seconds.")
    started_at: float | None
    finished_at: float | None
    error: str | None = Field(description="Why the job failed, as a sentence.")
    result: JobResult | None = Field(description="Set once the job has finished.")
    completed_tiles: int | None
    total_tiles: int | None
    remaining_tiles: int | None
    progress: str | None = Field(description='"3/10" while tiles run; null before tiling or when the gate rejected the picture.')
    attempt: int | None = Field(
        None, description="The processing attempt the result came from (above 1 when a replica failed mid-job); null until finished."
    )


class SegmentResult(Body):
    """`POST /segment`'s answer, in the shape of Roboflow's hosted API."""

    segmentation_mask: str = Field(description="Base64 PNG of class ids, the image's size.")
    class_map: dict[str, str]
    image: ImageSize
    confidence: float
    detected_classes: dict[str, list[int]]
    coverage: dict[str, float]
    rock_fraction: float
    rejected: bool
    rejection_reason: str | None
    core_score: float | None
    class_validation: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "For each detected class: validated_on_real_photos (true only for the classes the model was scored on with real "
            "labelled photos) and real_iou there; the other classes were learned from synthetic cores only."
        ),
    )


class Health(Body):
    """`GET /health`."""

    status: Literal["ok"]


class Ready(Body):
    """`GET /ready`: the model in use and the queue length."""

    ready: bool
    model: dict[str, Any] = Field(description="name, version and device of the model in use.")
    queue: int = Field(description="Jobs waiting.")


def documented(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` entry for a successful answer of `model`."""
    return {status: {"model": model}}
