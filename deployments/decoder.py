"""Decode: upload bytes → (H, W, 3) uint8 RGB, EXIF orientation applied."""

from __future__ import annotations

import asyncio

import numpy as np
from ray import serve

from deployments.settings import Settings
from pipelines.decode import decode_image


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=8)
class Decoder:
    def __init__(self, settings: Settings) -> None:
        self.max_pixels = settings.max_pixels

    async def decode(self, data: bytes) -> np.ndarray:
        return await asyncio.to_thread(decode_image, data, self.max_pixels)
