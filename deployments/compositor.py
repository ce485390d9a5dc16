"""Compositor: class ids → overlay PNG, class-index mask PNG, confidence heatmap PNG and the summary."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve

from deployments.jobs import heatmap_key, mask_key, overlay_key
from deployments.settings import Settings
from pipelines.classes import ClassTable
from pipelines.depth import DepthSpec, depth_log
from pipelines.render import apply_confidence, encode_png, render_outputs, summarize
from pipelines.tiling import Segmentation
from storage import open_store


def blank_segmentation(image: np.ndarray) -> Segmentation:
    """What a picture the content gate rejected is rendered as: all background."""
    blank = np.zeros(image.shape[:2], np.uint8)
    return Segmentation(blank, blank)


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=8)
class Compositor:
    """Stitched segmentation to stored results: the overlay, mask and confidence PNGs, the summary and the log in depth."""

    def __init__(self, settings: Settings) -> None:
        self.store = open_store(settings.store_url, settings.s3_endpoint_url)

    async def render(
        self,
        job_id: str,
        image: np.ndarray,
        segmentation: Segmentation | None,
        mask_weight: float,
        classes: list[dict[str, Any]],
        depth: dict[str, Any] | None = None,
        attempt: int = 0,
    ) -> dict[str, Any]:
        """Render and store the job's PNGs (written here, so the large ones never travel back
        through the object store); returns the summary. `segmentation` None: a picture the gate
        rejected, rendered as all background."""
        table = ClassTable.from_records(classes)
        segmentation = segmentation or blank_segmentation(image)
        rendered = await asyncio.to_thread(render_outputs, image, segmentation.class_ids, segmentation.confidence, mask_weight, table)
        for key, name in ((overlay_key, "overlay_png"), (mask_key, "mask_png"), (heatmap_key, "heatmap_png")):
            await asyncio.to_thread(self.store.put, key(job_id, attempt), rendered.pop(name))
        if depth is not None:  # the log registered to the depths the job gave (pipelines/depth.py)
            spec = DepthSpec.from_dict(depth)
            rendered["summary"]["depth_log"] = await asyncio.to_thread(
                depth_log, segmentation.class_ids, segmentation.confidence, spec, table
            )
        return rendered["summary"]

    async def render_mask(
        self, image: np.ndarray, segmentation: Segmentation | None, confidence: float, classes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """POST /segment: the class-index mask PNG with low-confidence pixels unclassified, and the
        summary. `segmentation` None: rejected by the gate, all background."""
        table = ClassTable.from_records(classes)

        def work() -> dict[str, Any]:
            found = segmentation or blank_segmentation(image)
            class_ids = apply_confidence(found.class_ids, found.confidence, confidence)
            return {"mask_png": encode_png(class_ids), "summary": summarize(class_ids, table)}

        return await asyncio.to_thread(work)
