"""Auto-exposure of the network's input: an under-exposed photo brightened to the range the
network was trained on, before it is tiled. The overlay still shows the photo as it came.

The network learnt core from photos whose brightest percent of pixels (the 99th percentile of
grey level) lies between 175 and 246. A photo of a dim core shed, a shaded tray or an exposure
set for a bright sky falls below that, and the network then loses rock at the pieces' edges and
calls whole dark pieces background (held-out photos darkened to 0.45 of their brightness: rock-
vs-background IoU 0.836 → 0.772). A single gain that lifts that percentile back to the lowest
one seen in training (`target`), at most `max_gain` times, restores them (0.828) and leaves a
photo already in range untouched (gain 1: no pixel changes). A linear gain is what a longer
exposure would have given, short of the noise; the percentile, not the mean, decides, so a
photo of dark mudstone with a white depth label is not brightened. The settings are part of the
checkpoint (`config.json`, `auto_exposure`), measured for its training photos (MODEL_CARD.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipelines.errors import checkpoint_section

_GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as Pillow's convert("L")
SAMPLE_PIXELS = 1_000_000  # the percentile is read from a strided sample of about this many pixels


def grey_levels(image: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB → (...) float32 grey levels, 0–255."""
    return image.astype(np.float32) @ _GREY


def scale_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """A copy of an (H, W, 3) uint8 image with its pixel values times `factor`, rounded and
    clipped at 255: a longer (or shorter) exposure. Done in bands, so no float copy of a whole
    scan is ever made."""
    out = np.empty_like(image)
    for start in range(0, image.shape[0], 256):
        band = image[start : start + 256].astype(np.float32)
        out[start : start + 256] = np.clip(band * factor + 0.5, 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True)
class AutoExposure:
    """Brightens under-exposed photos before segmentation, by a gain fitted on the training photos."""

    target: float = 175.0  # the 99th percentile of grey level an under-exposed photo is lifted to
    max_gain: float = 3.0  # never brighten more than this (a nearly black picture stays dark)
    percentile: float = 99.0

    @classmethod
    def from_config(cls, raw: dict[str, Any] | None) -> AutoExposure | None:
        return checkpoint_section(
            cls,
            "auto_exposure",
            raw,
            lambda s: 0 < s.target <= 255 and s.max_gain >= 1 and 0 < s.percentile <= 100,
            "target in (0, 255], max_gain ≥ 1, percentile in (0, 100]",
        )

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    def gain(self, image: np.ndarray) -> float:
        """The gain for an (H, W, 3) uint8 image: 1 when its bright end already reaches `target`."""
        step = max(1, math.isqrt(image.shape[0] * image.shape[1] // SAMPLE_PIXELS))
        grey = grey_levels(image[::step, ::step].reshape(-1, 3))
        if grey.size == 0:
            return 1.0
        bright = float(np.percentile(grey, self.percentile))
        return float(min(self.max_gain, max(1.0, self.target / max(bright, 1.0))))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """`image` itself when its gain is 1, else a brightened copy (clipped at 255)."""
        gain = self.gain(image)
        return image if gain == 1.0 else scale_brightness(image, gain)
