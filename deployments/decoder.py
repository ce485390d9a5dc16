"""Decode: upload bytes → (H, W, 3) uint8 RGB, EXIF orientation applied (or a raw pixel buffer)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve

from deployments.settings import Settings
from pipelines.decode import RawSpec, decode_image, decode_raw


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=8)
class Decoder:
    """Upload bytes (or a raw pixel buffer) to an RGB array, EXIF orientation applied; bad input raises an InputError."""

    def __init__(self, settings: Settings) -> None:
        self.max_pixels = settings.max_pixels

    async def decode(self, data: bytes, raw: dict[str, Any] | None = None) -> np.ndarray:
        if raw is not None:
            spec = RawSpec(raw["width"], raw["height"], raw["format"])
            return await asyncio.to_thread(decode_raw, data, spec, self.max_pixels)
        return await asyncio.to_thread(decode_image, data, self.max_pixels)
