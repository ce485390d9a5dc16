"""Tile plans, tile cutting and seam-free stitching of per-tile class probabilities.

An image is covered by tiles of the model's input size that overlap by `overlap` pixels; an image
smaller than a tile along an axis gets one tile there, rounded up to the encoder's output stride.
The image is reflect-padded to the plan's padded size, so every tile is a full tile, and the
stitched result is cropped back to the input size. Overlapping predictions are blended with a
window that ramps down towards tile edges, so no seam shows where tiles meet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MIN_WEIGHT = 1e-3  # keeps border pixels (covered by one tile's ramp only) well defined


@dataclass(frozen=True)
class Tile:
    index: int
    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


@dataclass(frozen=True)
class TilePlan:
    height: int
    width: int
    padded_height: int
    padded_width: int
    overlap: int
    tiles: tuple[Tile, ...]

    def __len__(self) -> int:
        return len(self.tiles)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _axis_starts(extent: int, tile: int, overlap: int, stride: int) -> tuple[int, list[int]]:
    """(tile length, tile starts) along one axis."""
    if extent <= tile:
        return _round_up(extent, stride), [0]
    step = max(stride, tile - overlap)
    starts = list(range(0, extent - tile, step)) + [extent - tile]
    return tile, starts


def plan_tiles(height: int, width: int, tile_size: int, overlap: int, stride: int = 32) -> TilePlan:
    """Cover an image of `height` × `width` with overlapping tiles, row by row."""
    if height < 1 or width < 1:
        raise ValueError("An image needs at least one pixel.")
    if tile_size % stride:
        raise ValueError(f"tile_size {tile_size} must be a multiple of the output stride {stride}.")
    tile_h, ys = _axis_starts(height, tile_size, overlap, stride)
    tile_w, xs = _axis_starts(width, tile_size, overlap, stride)
    tiles = tuple(
        Tile(i, y, x, y + tile_h, x + tile_w) for i, (y, x) in enumerate((y, x) for y in ys for x in xs)
    )
    return TilePlan(height, width, max(height, tile_h), max(width, tile_w), overlap, tiles)


def pad_image(image: np.ndarray, plan: TilePlan) -> np.ndarray:
    """Reflect-pad (H, W, 3) to the plan's padded size (edge-pad where the image is too thin)."""
    pad_h, pad_w = plan.padded_height - plan.height, plan.padded_width - plan.width
    if not pad_h and not pad_w:
        return image
    mode = "reflect" if pad_h < plan.height and pad_w < plan.width else "edge"
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)  # type: ignore[call-overload]


def cut_tile(padded: np.ndarray, tile: Tile) -> np.ndarray:
    return np.ascontiguousarray(padded[tile.y0 : tile.y1, tile.x0 : tile.x1])


def blend_window(height: int, width: int, overlap: int) -> np.ndarray:
    """(H, W) float32 weights: 1 inside, falling smoothly (raised cosine) over `overlap` px to the edges."""

    def ramp(n: int) -> np.ndarray:
        w = np.ones(n, np.float32)
        r = min(overlap, n // 2)
        if r > 0:
            t = (np.arange(r, dtype=np.float32) + 0.5) / r
            edge = 0.5 - 0.5 * np.cos(np.pi * t)
            w[:r] = edge
            w[n - r :] = edge[::-1]
        return np.maximum(w, _MIN_WEIGHT)

    return np.outer(ramp(height), ramp(width))


@dataclass(frozen=True)
class Segmentation:
    class_ids: np.ndarray  # (H, W) uint8
    confidence: np.ndarray  # (H, W) uint8, max class probability × 255


class Stitcher:
    """Accumulates window-weighted tile probabilities and reads out class ids and confidence."""

    def __init__(self, plan: TilePlan, num_classes: int) -> None:
        self.plan = plan
        self._scores = np.zeros((num_classes, plan.padded_height, plan.padded_width), np.float32)
        self._weights = np.zeros((plan.padded_height, plan.padded_width), np.float32)
        self._windows: dict[tuple[int, int], np.ndarray] = {}
        self.completed = 0

    def add(self, tile: Tile, probabilities: np.ndarray) -> None:
        window = self._windows.get(tile.shape)
        if window is None:
            window = self._windows[tile.shape] = blend_window(*tile.shape, self.plan.overlap)
        self._scores[:, tile.y0 : tile.y1, tile.x0 : tile.x1] += probabilities.astype(np.float32) * window
        self._weights[tile.y0 : tile.y1, tile.x0 : tile.x1] += window
        self.completed += 1

    def finish(self) -> Segmentation:
        if self.completed < len(self.plan):
            raise RuntimeError(f"Only {self.completed} of {len(self.plan)} tiles were added.")
        scores = self._scores[:, : self.plan.height, : self.plan.width]
        class_ids = scores.argmax(axis=0).astype(np.uint8)
        best = np.take_along_axis(scores, class_ids[None].astype(np.intp), axis=0)[0]
        confidence = best / self._weights[: self.plan.height, : self.plan.width]
        return Segmentation(class_ids, np.clip(confidence * 255 + 0.5, 0, 255).astype(np.uint8))
