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
    column_major: bool = False  # tiles ordered column by column (images wider than tall)

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
    """Cover an image of `height` × `width` with overlapping tiles, in strips along its long axis:
    row by row for a tall image, column by column for a wide one, so that a long scan is stitched
    strip after strip whichever way up it comes."""
    if height < 1 or width < 1:
        raise ValueError("An image needs at least one pixel.")
    if tile_size % stride:
        raise ValueError(f"tile_size {tile_size} must be a multiple of the output stride {stride}.")
    tile_h, ys = _axis_starts(height, tile_size, overlap, stride)
    tile_w, xs = _axis_starts(width, tile_size, overlap, stride)
    column_major = width > height
    order = [(y, x) for x in xs for y in ys] if column_major else [(y, x) for y in ys for x in xs]
    tiles = tuple(Tile(i, y, x, y + tile_h, x + tile_w) for i, (y, x) in enumerate(order))
    return TilePlan(height, width, max(height, tile_h), max(width, tile_w), overlap, tiles, column_major)


def _pad_mode(pad_h: int, pad_w: int, height: int, width: int) -> str:
    return "reflect" if pad_h < height and pad_w < width else "edge"


def pad_image(image: np.ndarray, plan: TilePlan) -> np.ndarray:
    """Reflect-pad (H, W, 3) to the plan's padded size (edge-pad where the image is too thin)."""
    pad_h, pad_w = plan.padded_height - plan.height, plan.padded_width - plan.width
    if not pad_h and not pad_w:
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=_pad_mode(pad_h, pad_w, plan.height, plan.width))  # type: ignore[call-overload]


@dataclass(frozen=True)
class TileCut:
    """Where a tile's pixels come from: all a process holding the image needs to cut the tile.

    The service sends this, not the pixels, to the model replica, which cuts the tile from the
    image it reads from the object store (zero-copy): per tile, 50 bytes travel instead of 786 KB.
    """

    tile: Tile
    height: int  # the image's
    width: int
    pad_mode: str  # how the tile is padded where it overhangs a thin image

    def of(self, image: np.ndarray) -> np.ndarray:
        """The tile's pixels of the *unpadded* image, padded exactly as `pad_image` would pad them.

        Padding only happens along an axis the image is shorter than one tile, where the single
        tile spans the whole axis, so padding the cut equals cutting the padded image; no padded
        copy of a large image is ever made."""
        tile = self.tile
        part = image[tile.y0 : min(tile.y1, self.height), tile.x0 : min(tile.x1, self.width)]
        pad_h, pad_w = tile.y1 - tile.y0 - part.shape[0], tile.x1 - tile.x0 - part.shape[1]
        if pad_h or pad_w:
            return np.pad(part, ((0, pad_h), (0, pad_w), (0, 0)), mode=self.pad_mode)  # type: ignore[call-overload]
        return np.ascontiguousarray(part)


def tile_cut(tile: Tile, plan: TilePlan) -> TileCut:
    mode = _pad_mode(plan.padded_height - plan.height, plan.padded_width - plan.width, plan.height, plan.width)
    return TileCut(tile, plan.height, plan.width, mode)


def cut_tile(image: np.ndarray, tile: Tile, plan: TilePlan) -> np.ndarray:
    """The tile's pixels (see `TileCut.of`)."""
    return tile_cut(tile, plan).of(image)


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


def argmax_and_max(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class ids as uint8, best score) over axis 0 of non-negative float32 scores (C, ...).

    numpy's argmax along the first axis is slow (it walks the classes pixel by pixel; 15 ms for 12
    classes over 350,000 pixels), its max is fast (plane by plane, 0.7 ms). So the class index is
    written, complemented, into the lowest mantissa bits of each score, whose bit patterns, read
    as int32, order exactly as the non-negative floats do, and one max yields both. Scores lose
    their last `ceil(log2(C))` mantissa bits (a relative 2⁻¹⁹ for 12 classes); classes closer than
    that count as a tie, which goes, as with numpy's argmax, to the lower index.
    """
    classes = scores.shape[0]
    if classes > 256:
        raise ValueError(f"At most 256 classes fit uint8 class ids; got {classes}.")
    bits = max(1, (classes - 1).bit_length())
    low = np.int32((1 << bits) - 1)
    keys = np.bitwise_and(scores.astype(np.float32, copy=False).view(np.int32), ~low)
    keys |= (low - np.arange(classes, dtype=np.int32)).reshape((classes,) + (1,) * (scores.ndim - 1))
    best = keys.max(axis=0)
    return (low - (best & low)).astype(np.uint8), (best & ~low).view(np.float32)


@dataclass(frozen=True)
class Segmentation:
    class_ids: np.ndarray  # (H, W) uint8
    confidence: np.ndarray  # (H, W) uint8, max class probability × 255


class Stitcher:
    """Accumulates window-weighted tile probabilities and reads out class ids and confidence.

    Memory is bounded by the tiles in flight, not by the image: float scores are kept only for the
    band of strips that tiles still to come may touch. Tiles are planned strip by strip along the
    image's long axis; once every tile of the first open strip has been added, the lines before the
    next strip's start can receive no more contributions, so they are read out (argmax,
    confidence) into the uint8 outputs and their scores dropped. Tiles may arrive in any order;
    the band then grows to cover them. Internally a column-major plan is handled transposed
    ("lines" are then image columns), so the band always runs along the first axis.
    """

    def __init__(self, plan: TilePlan, num_classes: int) -> None:
        self.plan = plan
        self.num_classes = num_classes
        self._t = plan.column_major
        self._length, self._breadth = (plan.width, plan.height) if self._t else (plan.height, plan.width)
        self._padded_length, self._padded_breadth = (plan.padded_width, plan.padded_height) if self._t else (plan.padded_height, plan.padded_width)
        self._class_ids = np.zeros((self._length, self._breadth), np.uint8)
        self._confidence = np.zeros((self._length, self._breadth), np.uint8)
        starts = [self._span(t)[0] for t in plan.tiles]
        self._strip_starts = sorted(set(starts))
        self._open_tiles = {a: starts.count(a) for a in self._strip_starts}
        self._next_strip = 0  # index into _strip_starts of the first strip not yet complete
        self._base = 0  # line at the top of the band
        # The band lives in buffers that are reused strip after strip: lines [_offset, _offset +
        # _lines) of the buffers hold image lines [_base, _base + _lines). The buffers grow only
        # to the widest band seen (no copy of the band per tile or per strip).
        self._score_buffer = np.zeros((num_classes, 0, self._padded_breadth), np.float32)
        self._weight_buffer = np.zeros((0, self._padded_breadth), np.float32)
        self._offset = 0
        self._lines = 0
        self._windows: dict[tuple[tuple[int, int], np.dtype], np.ndarray] = {}
        self._buffers: dict[tuple[int, int, int], np.ndarray] = {}
        self.completed = 0
        self.peak_band_lines = 0

    def _window(self, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        key = (shape, np.dtype(np.uint8) if dtype == np.uint8 else np.dtype(np.float32))
        window = self._windows.get(key)
        if window is None:
            window = blend_window(*shape, self.plan.overlap)
            if key[1] == np.uint8:
                window = window / np.float32(255.0)
            self._windows[key] = window
        return window

    def _span(self, tile: Tile) -> tuple[int, int, int, int]:
        """(a0, a1, b0, b1): the tile along the strip axis, then across it."""
        return (tile.x0, tile.x1, tile.y0, tile.y1) if self._t else (tile.y0, tile.y1, tile.x0, tile.x1)

    def add(self, tile: Tile, probabilities: np.ndarray) -> None:
        """`probabilities`: (C, h, w) for the tile, in image orientation; float, or uint8 holding
        probability × 255."""
        a0, a1, b0, b1 = self._span(tile)
        if a0 < self._base:
            raise ValueError(f"Tile {tile.index} reaches lines that were already read out.")
        self._cover(a1)
        if self._t:
            probabilities = probabilities.transpose(0, 2, 1)
        shape = (a1 - a0, b1 - b0)
        window = self._window(shape, np.dtype(np.float32))
        scaled = self._window(shape, probabilities.dtype)  # the window, times 1/255 for uint8 input
        buffer = self._buffers.get((probabilities.shape[0], *shape))
        if buffer is None:
            buffer = self._buffers[(probabilities.shape[0], *shape)] = np.empty((probabilities.shape[0], *shape), np.float32)
        np.multiply(probabilities, scaled, out=buffer)  # no temporaries: this runs for every tile
        scores = self._scores[:, a0 - self._base : a1 - self._base, b0:b1]
        np.add(scores, buffer, out=scores)
        self._weights[a0 - self._base : a1 - self._base, b0:b1] += window
        self.completed += 1
        self._open_tiles[a0] -= 1
        self._release()

    @property
    def _scores(self) -> np.ndarray:
        return self._score_buffer[:, self._offset : self._offset + self._lines]

    @property
    def _weights(self) -> np.ndarray:
        return self._weight_buffer[self._offset : self._offset + self._lines]

    def _cover(self, line_end: int) -> None:
        """Grow the band so that it reaches line `line_end` (exclusive)."""
        missing = line_end - self._base - self._lines
        if missing <= 0:
            return
        needed = self._lines + missing
        if self._offset + needed > self._weight_buffer.shape[0]:
            # move the band to the top of the buffers, in larger ones if it no longer fits
            scores, weights = self._scores, self._weights
            if needed > self._weight_buffer.shape[0]:
                self._score_buffer = np.empty((self.num_classes, needed, self._padded_breadth), np.float32)
                self._weight_buffer = np.empty((needed, self._padded_breadth), np.float32)
            self._score_buffer[:, : self._lines] = scores  # numpy copes with the overlap
            self._weight_buffer[: self._lines] = weights
            self._offset = 0
        start = self._offset + self._lines
        self._score_buffer[:, start : start + missing] = 0
        self._weight_buffer[start : start + missing] = 0
        self._lines = needed
        self.peak_band_lines = max(self.peak_band_lines, needed)

    def _release(self) -> None:
        """Read out and drop the lines no future tile can touch."""
        while self._next_strip < len(self._strip_starts) and self._open_tiles[self._strip_starts[self._next_strip]] == 0:
            self._next_strip += 1
        final = self._strip_starts[self._next_strip] if self._next_strip < len(self._strip_starts) else self._padded_length
        final = min(final, self._length, self._base + self._lines)
        if final <= self._base:
            return
        lines = final - self._base
        class_ids, best = argmax_and_max(self._scores[:, :lines, : self._breadth])
        confidence = best / np.maximum(self._weights[:lines, : self._breadth], _MIN_WEIGHT * _MIN_WEIGHT)
        self._class_ids[self._base : final] = class_ids
        self._confidence[self._base : final] = np.clip(confidence * 255 + 0.5, 0, 255).astype(np.uint8)
        self._offset, self._lines, self._base = self._offset + lines, self._lines - lines, final

    @property
    def band_bytes(self) -> int:
        return self._score_buffer.nbytes + self._weight_buffer.nbytes

    def finish(self) -> Segmentation:
        if self.completed < len(self.plan):
            raise RuntimeError(f"Only {self.completed} of {len(self.plan)} tiles were added.")
        if self._t:
            return Segmentation(np.ascontiguousarray(self._class_ids.T), np.ascontiguousarray(self._confidence.T))
        return Segmentation(self._class_ids, self._confidence)


def band_bytes(plan: TilePlan, num_classes: int, tiles_in_flight: int) -> int:
    """An upper bound of the Stitcher's float band when at most `tiles_in_flight` tiles are out at
    once and tiles are added in plan order: the rows of the tile rows those tiles can span."""
    if plan.column_major:
        per_strip, tile_length, length, breadth = len({t.y0 for t in plan.tiles}), plan.tiles[0].shape[1], plan.padded_width, plan.padded_height
    else:
        per_strip, tile_length, length, breadth = len({t.x0 for t in plan.tiles}), plan.tiles[0].shape[0], plan.padded_height, plan.padded_width
    strips_spanned = -(-tiles_in_flight // per_strip) + 1
    return min(length, strips_spanned * tile_length) * breadth * (num_classes + 1) * 4
