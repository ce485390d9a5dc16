"""The one settings object: every `LITHOSEG_` environment variable, typed, with its default.

Read once, in the application builder, and handed to each deployment through its constructor.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout, or site-packages when installed
CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
# The shipped model and serve_config.yaml: in the checkout, or where `pip install` put them
# (pyproject.toml's data-files).
DATA_ROOT = REPO_ROOT if CHECKOUT else Path(sys.prefix) / "share" / "lithoseg"
DEFAULT_MODEL = DATA_ROOT / "models" / "lithoseg-default"
# Results: var/store in a checkout; for an installed project the user's data folder.
DEFAULT_STORE = (
    REPO_ROOT / "var" / "store"
    if CHECKOUT
    else Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "lithoseg" / "store"
)


class Settings(BaseSettings):
    """Every setting of the service, from LITHOSEG_* environment variables (docs/configuration.md)."""

    model_config = SettingsConfigDict(env_prefix="LITHOSEG_", frozen=True)

    api_keys: SecretStr = Field(SecretStr(""), description="Comma-separated API keys accepted in the `api-key` header.")
    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, description="HTTP port.")
    store_url: str = Field(DEFAULT_STORE.as_uri(), description="file:///path or s3://bucket/prefix.")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, moto); unset for AWS.")
    model: str = Field(str(DEFAULT_MODEL), description="Checkpoint directory or s3://bucket/prefix of one.")
    default_mask_weight: float = Field(0.5, ge=0.0, le=1.0, description="mask_weight when a request gives none.")
    max_upload_bytes: int = Field(64 * 1024 * 1024, gt=0, description="Largest accepted upload, in bytes.")
    max_pixels: int = Field(100_000_000, gt=0, description="Largest accepted image, in pixels (after EXIF rotation).")
    result_ttl_s: float = Field(24 * 3600, gt=0, description="Finished jobs and their results are deleted after this long.")
    store_outage_s: float = Field(
        600,
        gt=0,
        description="While the result store fails, jobs wait for it (no attempt spent); one that waits this long fails, naming the error.",
    )
    max_queued_jobs: int = Field(1000, gt=0, description="Queue length beyond which POST /predict answers 503.")
    jobs_in_flight_per_replica: int = Field(
        4,
        gt=0,
        description="Jobs the tracker runs through the pipeline at once per live Segmenter replica (more replicas, more jobs at once).",
    )
    rate_limit_per_minute: int = Field(
        600, ge=0, description="Requests per API key per minute, shared by all Ingress replicas (0: no limit)."
    )
    drift_window: int = Field(
        200,
        ge=2,
        description=(
            "Finished jobs in GET /drift's reference window (the first ones after start or a model change) and in its current window."
        ),
    )
    drift_threshold: float = Field(
        4.0,
        gt=0,
        description="GET /drift raises an alarm when a statistic's current mean is this many standard errors from its reference mean.",
    )
    gate_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description=(
            "Core score below which a picture is rejected as not a core photo; "
            "unset: the checkpoint's own (gate.npz); 0 turns the gate off."
        ),
    )
    max_short_side: int | None = Field(
        None,
        ge=0,
        description=(
            "Images whose shorter side exceeds this many pixels are segmented scaled down to it and the mask scaled back; "
            "unset: the checkpoint's own (`max_short_side` in config.json); 0: always at the image's own resolution."
        ),
    )
    scale_search: bool = Field(
        True,
        description=(
            "Also segment at the checkpoint's `scales` of the working size and keep the most confident result (1.8-2.25x the "
            "tiles for the shipped model, about twice that for photos small enough to be enlarged); false: the working size only."
        ),
    )
    guided_filter: bool = Field(
        True,
        description=(
            "Refine each tile's class probabilities along the photo's edges as the checkpoint's `guided_filter` "
            "says (about 15 % of a CPU tile's time); false: the network's probabilities as they are."
        ),
    )
    auto_exposure: bool = Field(
        True,
        description=(
            "Brighten an under-exposed photo before segmenting it as the checkpoint's `auto_exposure` "
            "says (the overlay keeps the photo as sent); false: the photo as it comes."
        ),
    )
    background_logit_bias: float | None = Field(
        None,
        ge=-10,
        le=10,
        description=(
            "Added to the background class's logit before the softmax: higher calls a pixel rock only where the network is surer "
            "(fewer floors and box walls taken for rock, more rock edges missed), lower the reverse; unset: the checkpoint's own "
            "(`background_logit_bias` in config.json; 0 for the shipped model)."
        ),
    )
    segment_max_pixels: int = Field(
        16_000_000, gt=0, description="Largest image POST /segment (synchronous) accepts; larger ones go through POST /predict."
    )
    batch_max_entries: int = Field(500, gt=0, description="Most files a POST /predict/batch ZIP may hold.")
    batch_max_total_bytes: int = Field(1024 * 1024 * 1024, gt=0, description="Most bytes a batch ZIP may inflate to in total.")
    app_name: str = Field("lithoseg", description="Serve application name; also names the job tracker actor.")

    @field_validator("s3_endpoint_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value or None

    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]

    def resolve_model(self, model: dict[str, Any]) -> dict[str, Any]:
        """The Segmenter's description of its checkpoint (`info()`) with these settings applied:
        the one place where a setting wins over the checkpoint's own value. The JobRunner resolves
        it once per job and every deployment after it reads the result; the job tracker estimates
        tiles from it. (The Segmenter switches the guided filter and the auto-exposure off, and
        sets the background bias, where it loads a checkpoint, so its `info()` already says so.)"""
        resolved = dict(model)
        if self.gate_threshold is not None:
            resolved["gate_threshold"] = self.gate_threshold
        if self.max_short_side is not None:
            resolved["max_short_side"] = self.max_short_side or None  # 0: every image at its own size
        if not self.scale_search:
            resolved["scales"] = None
        if not self.guided_filter:
            resolved["guided_filter"] = None
        if not self.auto_exposure:
            resolved["auto_exposure"] = None
        return resolved

    @property
    def tracker_name(self) -> str:
        return f"{self.app_name}-job-tracker"
