"""In-process segmentation of a whole image: plan, cut, predict, stitch.

The service runs the same steps spread over deployments; evaluation and the naive baseline run
them here, in one process, so that both see exactly the tiling the service uses.
"""

from __future__ import annotations

import numpy as np

from pipelines.model import LoadedModel, predict_probabilities
from pipelines.tiling import Segmentation, Stitcher, cut_tile, pad_image, plan_tiles


def segment_image(model: LoadedModel, image: np.ndarray, batch_size: int = 1) -> Segmentation:
    config = model.config
    plan = plan_tiles(image.shape[0], image.shape[1], config.tile_size, config.tile_overlap, config.output_stride)
    padded = pad_image(image, plan)
    stitcher = Stitcher(plan, len(config.classes))
    for start in range(0, len(plan), batch_size):
        batch = plan.tiles[start : start + batch_size]
        for tile, probabilities in zip(batch, predict_probabilities(model, [cut_tile(padded, t) for t in batch]), strict=True):
            stitcher.add(tile, probabilities)
    return stitcher.finish()
