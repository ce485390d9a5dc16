"""Gate/Tiler: the content gate on a thumbnail, then the tiles of an image out to the Segmenter and
their probabilities stitched as they come back.

The tiler owns both ends of the fan-out so that tiles go out in a bounded window and are blended
as they return: only the tiles in flight travel through the object store at any moment, and the
stitcher keeps float scores only for the strip those tiles touch. `segment` is a streaming method:
it yields progress as tiles finish and the segmentation last, so the job tracker can report
`completed_tiles`; cancelling the stream cancels the tiles still out. A photo whose shorter side
exceeds the checkpoint's `max_short_side` is tiled scaled down, then also at each of the
checkpoint's `scales` of that size; the most confident segmentation is scaled back to the photo's
size (`pipelines/resolution.py`). Progress counts the tiles of all of them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import ray
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.settings import Settings
from pipelines.calibration import calibrated
from pipelines.exposure import AutoExposure
from pipelines.gate import gate_views
from pipelines.resolution import MostConfident, resample_image, scale_back, segmentation_plans, working_image
from pipelines.tiling import Stitcher, Tile, tile_cut

TILES_IN_FLIGHT = 8  # per image; enough to fill a batch, few enough to bound memory
PROGRESS_EVERY_S = 0.25


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
class Tiler:
    """The gate's views of a picture, then its tiles out to the Segmenter and the stitched segmentation back."""

    def __init__(self, settings: Settings, segmenter: DeploymentHandle) -> None:
        self.segmenter = segmenter
        self.running = 0  # images being tiled right now (for tests and metrics)

    def active(self) -> int:
        return self.running

    async def gate(self, image: np.ndarray, key: str | None = None) -> float | None:
        """The picture's core score (None when the model has no gate), from a few 224² views."""
        views = await asyncio.to_thread(gate_views, image)
        return await self.segmenter.gate.remote(views, key)

    async def segment(self, image_ref: list[ray.ObjectRef], model: dict[str, Any]) -> AsyncIterator[dict[str, Any] | ray.ObjectRef]:
        """Yields `{"completed": n, "total": N}` as tiles finish, then an object-store reference
        to the `Segmentation` (the runner hands it on to the Compositor without fetching it).

        Before the reference, `{"model_versions": [...]}`: the versions of the model that made
        the tiles (one: the job's model is pinned by `model["key"]`).

        `image_ref` is `[reference to the decoded image]` (in a list, so that Ray hands over the
        reference rather than the pixels): each tile request carries the reference and the tile's
        coordinates, and the Segmenter cuts the tile itself. `model` is the Segmenter's `info()`,
        read once per job by the runner, so a model swapped through `user_config` never meets a
        tile plan made for the previous one."""
        (reference,) = image_ref
        image: np.ndarray = await reference
        size = image.shape[:2]
        candidates, plans = segmentation_plans(size[0], size[1], model)  # `model` as the runner resolved it (Settings.resolve_model)
        # a photo larger than the model knows scaled down, an under-exposed one brightened; the
        # overlay keeps the photo as sent
        work = await asyncio.to_thread(working_image, image, candidates[0], AutoExposure.from_config(model.get("auto_exposure")))
        if work is not image:
            image, reference = work, ray.put(work)
        total, completed = sum(len(plan) for plan in plans), 0
        # one window over the tiles of every pass, so a job never drains between passes; a pass's
        # image is made when its first tile goes out and dropped when its last comes back
        work_items = ((index, tile) for index, plan in enumerate(plans) for tile in plan.tiles)
        sources: dict[int, ray.ObjectRef] = {}
        stitchers: dict[int, Stitcher] = {}
        window: set[asyncio.Task[tuple[int, Tile, np.ndarray]]] = set()
        loop = asyncio.get_running_loop()
        reported = loop.time()
        chooser = MostConfident()
        versions: set[Any] = set()  # of the model that made each tile: one, the job's (checked by the runner)

        async def run(index: int, tile: Tile) -> tuple[int, Tile, np.ndarray]:
            weighted, version = await self.segmenter.predict.remote(sources[index], tile_cut(tile, plans[index]), model.get("key"))
            versions.add(version)
            return index, tile, weighted

        self.running += 1
        try:
            yield {"completed": 0, "total": total}
            while True:
                for index, tile in itertools.islice(work_items, TILES_IN_FLIGHT - len(window)):
                    if index not in stitchers:
                        sources[index] = (
                            reference if index == 0 else ray.put(await asyncio.to_thread(resample_image, image, candidates[index]))
                        )
                        stitchers[index] = Stitcher(plans[index], model["num_classes"])
                    window.add(asyncio.create_task(run(index, tile)))
                if not window:
                    break
                done, window = await asyncio.wait(window, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    index, tile, weighted = task.result()
                    stitcher = stitchers[index]
                    await asyncio.to_thread(stitcher.add, tile, weighted)
                    completed += 1
                    if stitcher.completed == len(plans[index]):  # a pass is done: keep it if it is the surest
                        chooser.offer(index, await asyncio.to_thread(stitcher.finish))
                        del stitchers[index], sources[index]
                if loop.time() - reported >= PROGRESS_EVERY_S or not window:
                    reported = loop.time()
                    yield {"completed": completed, "total": total}
            del image
            assert chooser.best is not None  # the sizes always hold the working size
            yield {"model_versions": sorted(versions, key=str)}
            best = chooser.best
            yield ray.put(await asyncio.to_thread(lambda: calibrated(scale_back(best, size), model.get("confidence_calibration"))))
        finally:
            self.running -= 1
            for task in window:  # cancelled job: stop the tiles still out
                task.cancel()
