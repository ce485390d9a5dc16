"""What the client hands back: typed views of the API's JSON bodies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"finished", "failed", "cancelled"})


class ApiError(Exception):
    """A request the service answered with an error: its status and its sentence."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Job:
    """A submitted job: its id and its status when submitted."""

    job_id: str
    status: str
    name: str | None = None  # the file it was made from (batches)


@dataclass(frozen=True)
class JobState:
    """`GET /job/{id}` as the client reads it."""

    job_id: str
    status: str
    completed_tiles: int | None = None
    total_tiles: int | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> JobState:
        return cls(
            job_id=body["job_id"],
            status=body["status"],
            completed_tiles=body.get("completed_tiles"),
            total_tiles=body.get("total_tiles"),
            error=body.get("error"),
            result=body.get("result"),
            raw=body,
        )

    @property
    def done(self) -> bool:
        """Finished, failed or cancelled: nothing more will happen to it."""
        return self.status in TERMINAL

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def rejected(self) -> bool:
        """Finished, but the content gate judged the picture not a core photo."""
        return bool(self.result and self.result.get("rejected"))


@dataclass(frozen=True)
class BatchSubmitted:
    """`POST /predict/batch`: a job per image, and the entries skipped with the reason."""

    jobs: list[Job]
    skipped: list[dict[str, str]]
