"""Job records, their statuses and where a job's objects live in the ResultStore."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["queued", "started", "finished", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"finished", "failed", "cancelled"})
JOBS_PREFIX = "jobs/"


def record_key(job_id: str) -> str:
    """Where a job's record lives in the store."""
    return f"{JOBS_PREFIX}{job_id}/record.json"


def upload_key(job_id: str) -> str:
    """Where a job's upload waits until the job ends."""
    return f"{JOBS_PREFIX}{job_id}/upload"


def attempt_prefix(job_id: str, attempt: int) -> str:
    """Where one processing attempt writes its PNGs. Each attempt has its own folder, so an attempt
    that is retried (its replica died) or that outlives its retry overwrites nothing that the
    attempt whose result was committed wrote. Attempt 0: records from before attempts had folders."""
    return f"{JOBS_PREFIX}{job_id}/" if attempt <= 0 else f"{JOBS_PREFIX}{job_id}/attempt-{attempt}/"


def overlay_key(job_id: str, attempt: int = 0) -> str:
    """The overlay PNG of one attempt."""
    return f"{attempt_prefix(job_id, attempt)}overlay.png"


def mask_key(job_id: str, attempt: int = 0) -> str:
    """The class-index mask PNG of one attempt."""
    return f"{attempt_prefix(job_id, attempt)}mask.png"


def heatmap_key(job_id: str, attempt: int = 0) -> str:
    """The confidence heatmap PNG of one attempt."""
    return f"{attempt_prefix(job_id, attempt)}heatmap.png"


def job_prefix(job_id: str) -> str:
    """Every object of a job: its record, its upload and every attempt's PNGs."""
    return f"{JOBS_PREFIX}{job_id}/"


def new_job_id() -> str:
    """A new random job id (UUID 4)."""
    return str(uuid.uuid4())


def parse_job_id(text: str) -> str | None:
    """The canonical form of a job id, or None if `text` is not a UUID."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def owner_of(api_key: str) -> str:
    """What a record keeps of the key that made it: a digest, never the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass
class JobRecord:
    """A job as the tracker keeps and persists it (the owner is a digest of the key, never the key)."""

    job_id: str
    owner: str
    seq: int
    created_at: float
    mask_weight: float
    status: Status = "queued"
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    attempts: int = 0
    idempotency_key: str | None = None
    filename: str | None = None
    image: dict[str, Any] = field(default_factory=dict)
    gate: bool = True  # run the content gate before tiling
    raw: dict[str, Any] | None = None  # a raw pixel buffer's width, height and format
    depth: dict[str, Any] | None = None  # the depths the photo spans (pipelines.depth.DepthSpec), for the log in depth
    completed_tiles: int = 0
    total_tiles: int | None = None
    result_attempt: int = 0  # the attempt whose PNGs the result is (attempt_prefix)
    cleaned: bool = True  # False from a job's end until its upload and superseded attempts are deleted

    def options(self) -> dict[str, Any]:
        """What the runner needs besides the upload, this attempt's number among them."""
        return {"mask_weight": self.mask_weight, "gate": self.gate, "raw": self.raw, "depth": self.depth, "attempt": self.attempts}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> JobRecord:
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def public(self) -> dict[str, Any]:
        """The job as the API shows it (the reference service's fields first)."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "result": self.result,
            **self.progress(),
            "attempt": self.result_attempt or None,  # the processing attempt the result came from
        }

    def progress(self) -> dict[str, Any]:
        """Tile progress, as the chunked reference service reports it (`null` until planned)."""
        total = self.total_tiles
        return {
            "completed_tiles": self.completed_tiles if total is not None else None,
            "total_tiles": total,
            "remaining_tiles": total - self.completed_tiles if total is not None else None,
            "progress": f"{self.completed_tiles}/{total}" if total is not None else None,
        }


class QueueFullError(Exception):
    """The queue holds `max_queued_jobs`: a submit is refused (503, Retry-After) rather than queued."""
