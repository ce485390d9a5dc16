"""The working resolution: a photo larger than the model was trained on is segmented at a reduced
size and its segmentation scaled back to the photo's own.

A network learns the size of things in pixels as well as their look. The shipped model saw real
photos whose shorter side is at most 1,200 px (scaled by 0.5–1.5 in training); a 12-megapixel phone
photo of the same core box shows every piece about 2.5 times larger, and segmenting it at that size
scores clearly worse (MODEL_CARD.md, "Photo resolution") while costing five times the tiles. So a
checkpoint may name `max_short_side` in its `config.json`: images whose shorter side exceeds it
are resampled (Lanczos, antialiased) to that shorter side, segmented, and the class ids and
confidence scaled back by nearest neighbour, so the mask always has the photo's size. `None`
(the default for new checkpoints) segments every image at its own resolution.

The shorter side stands in badly for what matters, the size of the core in pixels: a narrow crop
of one core column can show it huge and stay under any cap. So a checkpoint may also name
`scales`, factors of the working size to try (the shipped model: 1, 0.7, 0.5); the image is
segmented at each and the segmentation with the highest mean confidence kept. A network is least
sure of itself at sizes it does not know: on the held-out photos enlarged twice this picks a
reduced size for all five and recovers their own-size accuracy, at 1.8-2.25 times the tiles
(MODEL_CARD.md, "Photo resolution").
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipelines.tiling import Segmentation


def scaled_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """(height, width) times `factor`, rounded, at least 1 px each."""
    return max(1, round(height * factor)), max(1, round(width * factor))


def working_size(height: int, width: int, max_short_side: int | None) -> tuple[int, int]:
    """(height, width) to segment an image of this size at: unchanged unless its shorter side
    exceeds `max_short_side`, else scaled down, aspect kept, to that shorter side."""
    short = min(height, width)
    if not max_short_side or short <= max_short_side:
        return height, width
    return scaled_size(height, width, max_short_side / short)


MIN_SEARCH_SIDE = 128  # no candidate shrinks an image's shorter side below this


def candidate_sizes(size: tuple[int, int], scales: list[float] | None) -> list[tuple[int, int]]:
    """The sizes to segment an image of working `size` at: `size` itself first, then each factor
    in `scales` below 1 that keeps the shorter side at MIN_SEARCH_SIDE px or more."""
    height, width = size
    sizes = [size]
    for factor in sorted({f for f in scales or [] if 0 < f < 1}, reverse=True):
        if min(height, width) * factor >= MIN_SEARCH_SIDE:
            candidate = scaled_size(height, width, factor)
            if candidate not in sizes:
                sizes.append(candidate)
    return sizes


def segmentation_sizes(height: int, width: int, max_short_side: int | None, scales: list[float] | None) -> list[tuple[int, int]]:
    """Every size an image of (height, width) is segmented at: its working size, then the
    candidates of the scale search."""
    return candidate_sizes(working_size(height, width, max_short_side), scales)


class MostConfident:
    """Keeps the surest of the segmentations of one image at the sizes of `segmentation_sizes`,
    offered in any order with their index in that list; ties go to the lower index (the larger
    size), so the service and `segment_image` choose alike whatever order passes finish in."""

    def __init__(self) -> None:
        self.best: Segmentation | None = None
        self._key = (-1.0, 0)

    def offer(self, index: int, segmentation: Segmentation) -> None:
        key = (mean_confidence(segmentation), -index)
        if key > self._key:
            self.best, self._key = segmentation, key


def mean_confidence(segmentation: Segmentation) -> float:
    """The mean of the top class probability over the image, 0–1: how sure the network is."""
    return float(segmentation.confidence.mean(dtype=np.float64)) / 255.0


def resample_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` (H, W, 3) uint8 resampled to `size` = (height, width). `reducing_gap` lets Pillow
    shrink by an integer box filter first, which keeps a 100-megapixel image fast."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS, reducing_gap=3.0))


def resample_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (H, W) uint8 label or confidence map resampled to `size` by nearest neighbour."""
    height, width = size
    if labels.shape == (height, width):
        return labels
    return np.asarray(Image.fromarray(labels).resize((width, height), Image.NEAREST))


def scale_back(segmentation: Segmentation, size: tuple[int, int]) -> Segmentation:
    """A segmentation made at the working size, at the photo's `size` = (height, width)."""
    return Segmentation(resample_labels(segmentation.class_ids, size), resample_labels(segmentation.confidence, size))
