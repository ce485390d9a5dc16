"""Compositor: class ids → overlay PNG, class-index mask PNG and the summary."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve

from pipelines.classes import ClassTable
from pipelines.render import render_outputs
from pipelines.tiling import Segmentation


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=8)
class Compositor:
    async def render(self, image: np.ndarray, segmentation: Segmentation, mask_weight: float, classes: list[dict[str, Any]]) -> dict[str, Any]:
        table = ClassTable.from_records(classes)
        return await asyncio.to_thread(render_outputs, image, segmentation.class_ids, mask_weight, table)
