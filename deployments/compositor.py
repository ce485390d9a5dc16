"""Compositor: class ids → overlay PNG, class-index mask PNG, confidence heatmap PNG and the summary."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve

from pipelines.classes import ClassTable
from pipelines.render import apply_confidence, encode_png, render_outputs, summarize
from pipelines.tiling import Segmentation


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=8)
class Compositor:
    async def render(self, image: np.ndarray, segmentation: Segmentation | None, mask_weight: float, classes: list[dict[str, Any]]) -> dict[str, Any]:
        """`segmentation` None: a picture the gate rejected, rendered as all background."""
        table = ClassTable.from_records(classes)
        if segmentation is None:
            blank = np.zeros(image.shape[:2], np.uint8)
            segmentation = Segmentation(blank, blank)
        return await asyncio.to_thread(render_outputs, image, segmentation.class_ids, segmentation.confidence, mask_weight, table)

    async def render_mask(self, segmentation: Segmentation, confidence: float, classes: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /segment: the class-index mask PNG with low-confidence pixels unclassified, and the summary."""
        table = ClassTable.from_records(classes)

        def work() -> dict[str, Any]:
            class_ids = apply_confidence(segmentation.class_ids, segmentation.confidence, confidence)
            return {"mask_png": encode_png(class_ids), "summary": summarize(class_ids, table)}

        return await asyncio.to_thread(work)
