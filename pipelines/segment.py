"""In-process segmentation of a whole image: plan, cut, predict, stitch.

The service runs the same steps spread over deployments; evaluation and the naive baseline run
them here, in one process, so that both see exactly the tiling the service uses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipelines.calibration import calibrated
from pipelines.model import LoadedModel, predict_weighted
from pipelines.resolution import MostConfident, resample_image, scale_back, segmentation_sizes, working_image
from pipelines.tiling import Segmentation, Stitcher, plan_tiles, tile_cut

# (tiles (h, w, 3) uint8, their blend windows (h, w)) -> weighted probabilities (C, h, w) uint8
Predict = Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]


def segment_with(
    predict: Predict, image: np.ndarray, tile_size: int, overlap: int, stride: int, num_classes: int, batch_size: int = 1
) -> Segmentation:
    """Tile `image`, run `predict` on batches of tiles and their windows, stitch."""
    plan = plan_tiles(image.shape[0], image.shape[1], tile_size, overlap, stride)
    stitcher = Stitcher(plan, num_classes)
    for start in range(0, len(plan), batch_size):
        batch = plan.tiles[start : start + batch_size]
        cuts = [tile_cut(tile, plan) for tile in batch]
        for tile, weighted in zip(batch, predict([cut.of(image) for cut in cuts], [cut.window() for cut in cuts]), strict=True):
            stitcher.add(tile, weighted)
    return stitcher.finish()


def segment_image(model: LoadedModel, image: np.ndarray, batch_size: int = 1, native: bool = False) -> Segmentation:
    """The service's segmentation of `image`: at the checkpoint's working resolution
    (`max_short_side`) and the most confident of its `scales`, or with `native` at the image's
    own resolution only (`pipelines/resolution.py`); brightened first if under-exposed, as the
    checkpoint's `auto_exposure` says (`pipelines/exposure.py`)."""
    config = model.config
    size = image.shape[:2]
    sizes = segmentation_sizes(size[0], size[1], None if native else config.max_short_side, None if native else config.scales)
    work = working_image(image, sizes[0], model.exposure)
    chooser = MostConfident()

    def predict(tiles: list[np.ndarray], windows: list[np.ndarray]) -> list[np.ndarray]:
        return predict_weighted(model, tiles, windows)

    for index, candidate in enumerate(sizes):
        segmentation = segment_with(
            predict,
            resample_image(work, candidate),
            config.tile_size,
            config.tile_overlap,
            config.output_stride,
            len(config.classes),
            batch_size,
        )
        chooser.offer(index, segmentation)
    assert chooser.best is not None
    return calibrated(scale_back(chooser.best, size), config.confidence_calibration)
