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
of one core column can show it huge and stay under any cap, and a small photo of a whole box shows
it smaller than any training photo did. So a checkpoint may also name `scales`, factors of the
working size to try (the shipped model: 1.4, 1, 0.7, 0.5, 0.35, 0.25); the image is segmented at
each and the segmentation with the highest mean confidence kept. A network is least sure of
itself at sizes it does not know: on the held-out photos enlarged twice this picks a reduced size
for all five and recovers their own-size accuracy. Four guards: a factor above 1 is tried only
while the enlarged image stays within a 4:3 photo's frame at `max_short_side` (no image is
segmented larger than the largest training photo, and scans are never enlarged); a segmentation
that has lost much of the rock the others see is never kept, since calling everything
background is a confident answer too; nor is one that has lost a quarter of the rock seen at the
working size without being clearly surer (on photos the network never saw, the cross-validation
folds, a pass at a quarter of the size was a little surer and had lost a third of the core;
docs/experiments/photo-resolution.md), nor one smaller than the working size that is not clearly
surer (there, reductions a little surer than the working size were worse every time, clearly
surer ones better); nor is one that calls the whole picture rock where
another sees background, which is the other confident answer of a network shown core far too
small (MODEL_CARD.md, "Photo resolution").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from pipelines.classes import BACKGROUND_ID
from pipelines.exposure import AutoExposure
from pipelines.tiling import Segmentation, TilePlan, plan_tiles


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
PHOTO_ASPECT = 4 / 3  # an enlarged image stays within a camera photo's frame at the cap
ROCK_KEPT = 0.5  # a candidate with under half the rock cover of the one with most is out
WORKING_ROCK_KEPT = 0.75  # ...and so is one with under three quarters of the working size's,
WORKING_SURER = 0.03  # ...unless its mean confidence is this much higher (a close-up's working size over-calls rock);
# and one smaller than the working size always needs that margin (a reduction a little surer lost detail, not doubt)
WHOLE_ROCK = 0.99  # a candidate giving this share of the picture or more to rock is out...
SOME_BACKGROUND = 0.1  # ...once another gives at least this share to the background


def candidate_sizes(size: tuple[int, int], scales: list[float] | None, max_short_side: int | None = None) -> list[tuple[int, int]]:
    """The sizes to segment an image of working `size` at: `size` itself first, then those of
    the other factors in `scales`, largest first. A factor below 1 counts while the shorter side
    stays at MIN_SEARCH_SIDE px or more; one above 1 only while the image stays within the frame
    of a 4:3 photo at the cap, `max_short_side` by 4/3 of it (so never without a cap, and never
    for a long scan)."""
    height, width = size
    sizes = [size]
    for factor in sorted({f for f in scales or [] if f > 0 and f != 1}, reverse=True):
        short, long = min(height, width) * factor, max(height, width) * factor
        if factor < 1:
            counts = short >= MIN_SEARCH_SIDE
        else:
            counts = max_short_side is not None and max_short_side > 0 and short <= max_short_side and long <= PHOTO_ASPECT * max_short_side
        if counts:
            candidate = scaled_size(height, width, factor)
            if candidate not in sizes:
                sizes.append(candidate)
    return sizes


def segmentation_sizes(height: int, width: int, max_short_side: int | None, scales: list[float] | None) -> list[tuple[int, int]]:
    """Every size an image of (height, width) is segmented at: its working size, then the
    candidates of the scale search."""
    return candidate_sizes(working_size(height, width, max_short_side), scales, max_short_side)


def segmentation_plans(height: int, width: int, model: dict[str, Any]) -> tuple[list[tuple[int, int]], list[TilePlan]]:
    """The sizes an image is segmented at and the tile plan of each, from a model's description
    (the Segmenter's `info()` with the settings applied, `Settings.resolve_model`): what the Tiler
    runs and what the job tracker counts a queued job's tiles by."""
    sizes = segmentation_sizes(height, width, model.get("max_short_side"), model.get("scales"))
    return sizes, [plan_tiles(h, w, model["tile_size"], model["tile_overlap"], model["output_stride"]) for h, w in sizes]


class MostConfident:
    """Keeps the surest of the segmentations of one image at the sizes of `segmentation_sizes`,
    offered in any order with their index in that list. A network shown core too small for it
    calls the pieces background, or the whole picture rock, and is sure of either; so one whose
    rock covers less than ROCK_KEPT of the largest rock cover offered is out, and so is one under
    WORKING_ROCK_KEPT of the working size's that is not WORKING_SURER surer than it, and one smaller
    than the working size that is not WORKING_SURER surer than it, and one that gives WHOLE_ROCK of
    the picture to rock while another gives SOME_BACKGROUND to the background.
    If that leaves none, the working size's (index 0) is kept: the answer without a search. Ties
    go to the lower index (the working size first), so the service and `segment_image` choose
    alike whatever order passes finish in. Holds only the segmentations that can still be chosen,
    and the working size's."""

    def __init__(self) -> None:
        self._candidates: list[tuple[tuple[float, int], float, Segmentation]] = []  # (key, rock cover, segmentation)
        self._most_rock = 0.0
        self._least_rock = 1.0
        self._working: Segmentation | None = None
        self._working_figures = (0.0, 0.0, 0)  # the working size's (rock cover, mean confidence, pixels) once offered

    def offer(self, index: int, segmentation: Segmentation) -> None:
        key, rock = (mean_confidence(segmentation), -index), rock_cover(segmentation)
        self._most_rock, self._least_rock = max(self._most_rock, rock), min(self._least_rock, rock)
        if index == 0:
            self._working, self._working_figures = segmentation, (rock, key[0], segmentation.class_ids.size)
        candidates = [*self._candidates, (key, rock, segmentation)]
        working_rock, working_confidence, working_pixels = self._working_figures
        # out for good: too little rock, or all rock beside one with background (the largest cover
        # only grows, the smallest only shrinks, the working size's is fixed once offered); or, not
        # clearly surer than the working size, too little of its rock or smaller than it; or
        # beaten on both counts by one that is never out for all rock
        self._candidates = [
            c
            for c in candidates
            if c[1] >= ROCK_KEPT * self._most_rock
            and (
                (c[1] >= WORKING_ROCK_KEPT * working_rock and c[2].class_ids.size >= working_pixels)
                or c[0][0] >= working_confidence + WORKING_SURER
            )
            and not (c[1] >= WHOLE_ROCK and self._least_rock <= 1.0 - SOME_BACKGROUND)
            and not any(o[0] > c[0] and c[1] <= o[1] < WHOLE_ROCK for o in candidates)
        ]

    @property
    def best(self) -> Segmentation | None:
        # `offer` has already dropped every candidate that cannot be chosen
        return max(self._candidates, key=lambda c: c[0])[2] if self._candidates else self._working


def mean_confidence(segmentation: Segmentation) -> float:
    """The mean of the top class probability over the image, 0–1: how sure the network is."""
    return float(segmentation.confidence.mean(dtype=np.float64)) / 255.0


def rock_cover(segmentation: Segmentation) -> float:
    """The share of the image's pixels given a rock class, 0–1."""
    return float(np.count_nonzero(segmentation.class_ids != BACKGROUND_ID)) / segmentation.class_ids.size


def resample_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` (H, W, 3) uint8 resampled to `size` = (height, width). `reducing_gap` lets Pillow
    shrink by an integer box filter first, which keeps a 100-megapixel image fast."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0))


def working_image(image: np.ndarray, size: tuple[int, int], exposure: AutoExposure | None) -> np.ndarray:
    """`image` as the network is shown it: resampled to the working `size` and, if `exposure` finds
    it under-exposed, brightened (`pipelines/exposure.py`); `image` itself when neither applies.
    The service's Tiler and `segment_image` both start here, so they segment the same pixels."""
    work = resample_image(image, size)
    return work if exposure is None else exposure(work)


def resample_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (H, W) uint8 label or confidence map resampled to `size` by nearest neighbour."""
    height, width = size
    if labels.shape == (height, width):
        return labels
    return np.asarray(Image.fromarray(labels).resize((width, height), Image.Resampling.NEAREST))


def scale_back(segmentation: Segmentation, size: tuple[int, int]) -> Segmentation:
    """A segmentation made at the working size, at the photo's `size` = (height, width)."""
    return Segmentation(resample_labels(segmentation.class_ids, size), resample_labels(segmentation.confidence, size))
