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

from pipelines.errors import CheckpointError

_GREY = np.array([0.299, 0.587, 0.114], np.float32)
SAMPLE_PIXELS = 1_000_000  # the percentile is read from a strided sample of about this many pixels


@dataclass(frozen=True)
class AutoExposure:
    target: float = 175.0  # the 99th percentile of grey level an under-exposed photo is lifted to
    max_gain: float = 3.0  # never brighten more than this (a nearly black picture stays dark)
    percentile: float = 99.0

    @classmethod
    def from_config(cls, raw: dict[str, Any] | None) -> AutoExposure | None:
        if raw is None:
            return None
        try:
            spec = cls(**raw)
        except TypeError as exc:
            raise CheckpointError(f"auto_exposure in config.json is not valid: {exc}.") from exc
        if not (0 < spec.target <= 255 and spec.max_gain >= 1 and 0 < spec.percentile <= 100):
            raise CheckpointError(f"auto_exposure in config.json is not valid: {raw} (target in (0, 255], max_gain ≥ 1, percentile in (0, 100]).")
        return spec

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    def gain(self, image: np.ndarray) -> float:
        """The gain for an (H, W, 3) uint8 image: 1 when its bright end already reaches `target`."""
        step = max(1, math.isqrt(image.shape[0] * image.shape[1] // SAMPLE_PIXELS))
        grey = image[::step, ::step].reshape(-1, 3).astype(np.float32) @ _GREY
        if grey.size == 0:
            return 1.0
        bright = float(np.percentile(grey, self.percentile))
        return float(min(self.max_gain, max(1.0, self.target / max(bright, 1.0))))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """`image` itself when its gain is 1, else a brightened copy (clipped at 255)."""
        gain = self.gain(image)
        if gain == 1.0:
            return image
        out = np.empty_like(image)
        for start in range(0, image.shape[0], 256):  # in bands: no float copy of a whole scan
            band = image[start : start + 256].astype(np.float32)
            out[start : start + 256] = np.clip(band * gain + 0.5, 0, 255).astype(np.uint8)
        return out
