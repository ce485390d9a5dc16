"""Gate/Tiler: plans the tiles of an image, fans them out to the Segmenter and stitches the answers.

The tiler owns both ends of the fan-out so that tiles go out in a bounded window and their
probabilities are blended as they come back: only the tiles in flight travel through the object
store at any moment.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.settings import Settings
from pipelines.tiling import Segmentation, Stitcher, cut_tile, pad_image, plan_tiles

TILES_IN_FLIGHT = 8  # per image; enough to fill a batch, few enough to bound memory


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=16)
class Tiler:
    def __init__(self, settings: Settings, segmenter: DeploymentHandle) -> None:
        self.segmenter = segmenter

    async def segment(self, image: np.ndarray, model: dict[str, Any]) -> Segmentation:
        """`model` is the Segmenter's `info()`, read once per job by the runner, so a model swapped
        through `user_config` never meets a tile plan made for the previous one."""
        plan = plan_tiles(image.shape[0], image.shape[1], model["tile_size"], model["tile_overlap"], model["output_stride"])
        padded = pad_image(image, plan)
        stitcher = Stitcher(plan, model["num_classes"])
        window: set[asyncio.Task[tuple[Any, np.ndarray]]] = set()
        pending = iter(plan.tiles)

        async def run(tile: Any) -> tuple[Any, np.ndarray]:
            return tile, await self.segmenter.predict.remote(cut_tile(padded, tile))

        try:
            for tile in pending:
                window.add(asyncio.create_task(run(tile)))
                if len(window) >= TILES_IN_FLIGHT:
                    done, window = await asyncio.wait(window, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        await asyncio.to_thread(stitcher.add, *task.result())
            for task in asyncio.as_completed(window):
                await asyncio.to_thread(stitcher.add, *(await task))
            window = set()
        finally:
            for task in window:  # cancelled job: stop the tiles still out
                task.cancel()
        return await asyncio.to_thread(stitcher.finish)
