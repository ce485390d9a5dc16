"""Confidence that means what it says: a checkpoint's calibration of per-pixel confidence.

The network's top-class probability (the confidence heatmap, `/segment`'s `confidence`
threshold, the log's per-interval confidence) is not, out of the box, the chance that the pixel's
class is right. A checkpoint may carry `confidence_calibration`: 256 values, the calibrated
confidence (× 255) for each raw one, fitted on real labelled photos by `training.calibration`
(isotonic: monotone, so it never reorders pixels, and applied after the classes are chosen, so no
class changes). The service and `pipelines.segment` apply it at the same point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipelines.tiling import Segmentation


def calibrated(segmentation: Segmentation, table: Sequence[int] | None) -> Segmentation:
    """`segmentation` with its confidence mapped through the checkpoint's table (unchanged without one)."""
    if not table:
        return segmentation
    lut = np.asarray(table, np.uint8)
    if lut.shape != (256,):
        raise ValueError(f"A confidence calibration has 256 entries, one per raw confidence; this one has {lut.size}.")
    return Segmentation(segmentation.class_ids, lut[segmentation.confidence])
