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

TILES_PER_REQUEST = 4  # a request through Serve costs ~5 ms of CPU at both ends: a few tiles share it
TILES_IN_FLIGHT = 12  # per image (three requests); enough to keep both of a replica's batches fed, few enough to bound memory
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
        reference rather than the pixels): each request carries the reference and the coordinates
        of up to `TILES_PER_REQUEST` tiles of one pass, and the Segmenter cuts the tiles itself. `model` is the Segmenter's `info()`,
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
        work_items = (
            (index, list(plan.tiles[start : start + TILES_PER_REQUEST]))
            for index, plan in enumerate(plans)
            for start in range(0, len(plan), TILES_PER_REQUEST)
        )
        sources: dict[int, ray.ObjectRef] = {}
        stitchers: dict[int, Stitcher] = {}
        window: set[asyncio.Task[tuple[int, list[Tile], list[np.ndarray]]]] = set()
        in_flight = 0  # tiles
        loop = asyncio.get_running_loop()
        reported = loop.time()
        chooser = MostConfident()
        versions: set[Any] = set()  # of the model that made each tile: one, the job's (checked by the runner)

        async def run(index: int, tiles: list[Tile]) -> tuple[int, list[Tile], list[np.ndarray]]:
            cuts = [tile_cut(tile, plans[index]) for tile in tiles]
            weighted, version = await self.segmenter.predict.remote(sources[index], cuts, model.get("key"))
            versions.add(version)
            return index, tiles, weighted

        def stitch(stitcher: Stitcher, tiles: list[Tile], weighted: list[np.ndarray]) -> None:
            for tile, probabilities in zip(tiles, weighted, strict=True):
                stitcher.add(tile, probabilities)

        self.running += 1
        try:
            yield {"completed": 0, "total": total}
            while True:
                while in_flight < TILES_IN_FLIGHT and (item := next(work_items, None)) is not None:
                    index, tiles = item
                    if index not in stitchers:
                        sources[index] = (
                            reference if index == 0 else ray.put(await asyncio.to_thread(resample_image, image, candidates[index]))
                        )
                        stitchers[index] = Stitcher(plans[index], model["num_classes"])
                    window.add(asyncio.create_task(run(index, tiles)))
                    in_flight += len(tiles)
                if not window:
                    break
                done, window = await asyncio.wait(window, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    index, tiles, weighted = task.result()
                    stitcher = stitchers[index]
                    await asyncio.to_thread(stitch, stitcher, tiles, weighted)
                    in_flight -= len(tiles)
                    completed += len(tiles)
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
