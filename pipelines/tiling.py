"""Tile plans, tile cutting and seam-free stitching of per-tile class probabilities.

An image is covered by tiles of the model's input size that overlap by `overlap` pixels; an image
smaller than a tile along an axis gets one tile there, rounded up to the encoder's output stride.
The image is reflect-padded to the plan's padded size, so every tile is a full tile, and the
stitched result is cropped back to the input size. Overlapping predictions are blended with a
window that ramps down towards the edges a tile shares with its neighbours, so no seam shows
where tiles meet.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """One tile's place in the image: its box and the part of it that counts."""

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
    """How an image is cut into overlapping tiles at one scale."""

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
    overlap: int  # the plan's, for the tile's blend window

    def window(self) -> np.ndarray:
        return tile_window(self)

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
    """The part of a tile's output that goes into the stitched result, and where."""
    mode = _pad_mode(plan.padded_height - plan.height, plan.padded_width - plan.width, plan.height, plan.width)
    return TileCut(tile, plan.height, plan.width, mode, plan.overlap)


def blend_window(height: int, width: int, overlap: int, ramps: tuple[bool, bool, bool, bool] = (True, True, True, True)) -> np.ndarray:
    """(H, W) float32 weights: 1 inside, falling smoothly (raised cosine) over `overlap` px towards
    each edge named in `ramps` (top, bottom, left, right) and flat up to the others.

    Two neighbours' ramps over the same `overlap` pixels sum to exactly 1, and where tiles overlap
    by more, to more, so with flat edges at the image's border every pixel's total weight is at
    least 1."""

    def ramp(n: int, start: bool, end: bool) -> np.ndarray:
        w = np.ones(n, np.float32)
        r = min(overlap, n // 2)
        if r > 0:
            t = (np.arange(r, dtype=np.float32) + 0.5) / r
            edge = 0.5 - 0.5 * np.cos(np.pi * t)
            if start:
                w[:r] = edge
            if end:
                w[n - r :] = edge[::-1]
        return w

    top, bottom, left, right = ramps
    return np.outer(ramp(height, top, bottom), ramp(width, left, right))


WindowKey = tuple[int, int, int, tuple[bool, bool, bool, bool]]  # height, width, overlap, ramps


def window_key(cut: TileCut) -> WindowKey:
    """What a tile's blend window depends on: its shape, the overlap, and which of its edges face
    a neighbour (ramp) rather than the image's border (flat: no other tile covers those pixels)."""
    tile = cut.tile
    return (*tile.shape, cut.overlap, (tile.y0 > 0, tile.y1 < cut.height, tile.x0 > 0, tile.x1 < cut.width))


@functools.lru_cache(maxsize=64)  # a plan has at most nine kinds of tile; images of many sizes, more
def _window(key: WindowKey) -> np.ndarray:
    window = blend_window(*key)
    window.flags.writeable = False
    return window


def tile_window(cut: TileCut) -> np.ndarray:
    """The blend window of a tile (read-only, shared): ramps towards its neighbours, flat at the
    image's border."""
    return _window(window_key(cut))


def weigh(probabilities: np.ndarray, window: np.ndarray) -> np.ndarray:
    """What the Stitcher takes: (C, h, w) probabilities times the tile's window, × 255, rounded to
    uint8. (The model replica does the same in torch, `pipelines.model.predict_weighted`.)"""
    return np.round(probabilities * (window * np.float32(255.0))).astype(np.uint8)


def argmax_and_max(scores: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(class ids as uint8, best score) over axis 0 of unsigned integer scores (C, ...) that are at
    most `limit`.

    numpy's argmax along the first axis is slow (it walks the classes pixel by pixel; 15 ms for 12
    classes over 350,000 pixels), its max is fast (plane by plane). So each score is shifted left
    and the class index, complemented, written into the bits freed; one max then yields both, and
    a tie goes, as with numpy's argmax, to the lower index. Keys are 16-bit where score and class
    fit (12 classes and scores up to 4,095), else 32-bit.
    """
    classes = scores.shape[0]
    if classes > 256:
        raise ValueError(f"At most 256 classes fit uint8 class ids; got {classes}.")
    bits = max(1, (classes - 1).bit_length())
    width = limit.bit_length() + bits
    if width > 32:
        raise ValueError(f"Scores up to {limit} with {classes} classes do not fit 32-bit keys.")
    dtype = np.dtype(np.uint16 if width <= 16 else np.uint32)
    low = dtype.type((1 << bits) - 1)
    keys = np.left_shift(scores, bits, dtype=dtype)
    keys |= (low - np.arange(classes, dtype=dtype)).reshape((classes,) + (1,) * (scores.ndim - 1))
    best = keys.max(axis=0)
    return (low - (best & low)).astype(np.uint8), best >> dtype.type(bits)


def _cover(starts: set[int], length: int) -> int:
    """The most tiles that cover one position along an axis (tiles start at `starts`)."""
    return max(sum(1 for other in starts if other <= start < other + length) for start in starts)


@dataclass(frozen=True)
class Segmentation:
    """A stitched result: a class id and a confidence per pixel."""

    class_ids: np.ndarray  # (H, W) uint8
    confidence: np.ndarray  # (H, W) uint8, max class probability × 255


class Stitcher:
    """Accumulates window-weighted tile probabilities and reads out class ids and confidence.

    Tiles arrive as uint8 probabilities already multiplied by their blend window (`weigh`, or the
    model replica's `predict_weighted`), and are summed into 16-bit integer scores: a third of the
    memory traffic of float arithmetic, for the same answer. The argmax of the sum is the blended
    class; confidence is the best score over the sum of the windows (× 255, rounded as the
    scores are), so a tile that is 99 % sure stays 99 % sure even where the other classes round
    to zero.

    Memory is bounded by the tiles in flight, not by the image: scores are kept only for the band
    of strips that tiles still to come may touch. Tiles are planned strip by strip along the
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
        self._padded_length, self._padded_breadth = (
            (plan.padded_width, plan.padded_height) if self._t else (plan.padded_height, plan.padded_width)
        )
        self._class_ids = self._lines_first(np.zeros(self._physical(self._length, self._breadth), np.uint8))
        self._confidence = self._lines_first(np.zeros(self._physical(self._length, self._breadth), np.uint8))
        starts = [self._span(t)[0] for t in plan.tiles]
        self._strip_starts = sorted(set(starts))
        self._open_tiles = {a: starts.count(a) for a in self._strip_starts}
        self._next_strip = 0  # index into _strip_starts of the first strip not yet complete
        self._base = 0  # line at the top of the band
        # Each tile adds at most 255 to a class's score and to the weight of a pixel (its window is
        # at most 1), so sums stay below 255 × the most tiles covering a pixel: 16-bit integers,
        # unless tiles overlap by all but a stride or two (then 32-bit). The bound also picks the
        # argmax's key width.
        tile = plan.tiles[0]
        cover = _cover({t.y0 for t in plan.tiles}, tile.shape[0]) * _cover({t.x0 for t in plan.tiles}, tile.shape[1])
        self._limit = 255 * cover
        self._dtype = np.dtype(np.uint16 if self._limit <= np.iinfo(np.uint16).max else np.uint32)
        # The band lives in a buffer that is reused strip after strip: lines [_offset, _offset +
        # _lines) of the buffer hold image lines [_base, _base + _lines). The buffer grows only
        # to the widest band seen (no copy of the band per tile or per strip).
        self._score_buffer = self._lines_first(np.zeros((num_classes, *self._physical(0, self._padded_breadth)), self._dtype))
        self._weight_buffer = self._lines_first(np.zeros(self._physical(0, self._padded_breadth), self._dtype))
        self._windows: dict[WindowKey, np.ndarray] = {}
        self._offset = 0
        self._lines = 0
        self.completed = 0

    def _physical(self, lines: int, breadth: int) -> tuple[int, int]:
        """The shape in memory of a (lines, breadth) plane: the image's orientation, so that a
        tile adds along contiguous rows even when lines are image columns."""
        return (breadth, lines) if self._t else (lines, breadth)

    def _lines_first(self, array: np.ndarray) -> np.ndarray:
        """A view of an array allocated in `_physical` shape with lines on the first (plane) axis."""
        return array.swapaxes(-1, -2) if self._t else array

    def _span(self, tile: Tile) -> tuple[int, int, int, int]:
        """(a0, a1, b0, b1): the tile along the strip axis, then across it."""
        return (tile.x0, tile.x1, tile.y0, tile.y1) if self._t else (tile.y0, tile.y1, tile.x0, tile.x1)

    def add(self, tile: Tile, weighted: np.ndarray) -> None:
        """`weighted`: (C, h, w) uint8 for the tile, in image orientation: probability × the
        tile's blend window × 255 (see `weigh`)."""
        if weighted.dtype != np.uint8 or weighted.shape != (self.num_classes, *tile.shape):
            raise ValueError(
                f"Tile {tile.index} needs ({self.num_classes}, {tile.shape[0]}, {tile.shape[1]}) "
                f"uint8 weighted probabilities, got {weighted.shape} {weighted.dtype}."
            )
        a0, a1, b0, b1 = self._span(tile)
        if a0 < self._base:
            raise ValueError(f"Tile {tile.index} reaches lines that were already read out.")
        self._cover(a1)
        if self._t:
            weighted = weighted.transpose(0, 2, 1)
        scores = self._scores[:, a0 - self._base : a1 - self._base, b0:b1]
        np.add(scores, weighted, out=scores)
        self._weights[a0 - self._base : a1 - self._base, b0:b1] += self._window255(tile)
        self.completed += 1
        self._open_tiles[a0] -= 1
        self._release()

    def _window255(self, tile: Tile) -> np.ndarray:
        """The tile's blend window × 255, rounded, in the band's integers and orientation."""
        cut = tile_cut(tile, self.plan)
        key = window_key(cut)
        found = self._windows.get(key)
        if found is None:
            found = np.round(tile_window(cut) * np.float32(255.0)).astype(self._dtype)
            found = self._windows[key] = found.T if self._t else found  # a view: the band is stored in image orientation
        return found

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
        if self._offset + needed > self._score_buffer.shape[1]:
            # move the band to the top of the buffers, in larger ones if it no longer fits
            scores, weights = self._scores, self._weights
            if needed > self._score_buffer.shape[1]:
                plane = self._physical(needed, self._padded_breadth)
                self._score_buffer = self._lines_first(np.empty((self.num_classes, *plane), self._dtype))
                self._weight_buffer = self._lines_first(np.empty(plane, self._dtype))
            self._score_buffer[:, : self._lines] = scores  # numpy copes with the overlap
            self._weight_buffer[: self._lines] = weights
            self._offset = 0
        start = self._offset + self._lines
        self._score_buffer[:, start : start + missing] = 0
        self._weight_buffer[start : start + missing] = 0
        self._lines = needed

    def _release(self) -> None:
        """Read out and drop the lines no future tile can touch."""
        while self._next_strip < len(self._strip_starts) and self._open_tiles[self._strip_starts[self._next_strip]] == 0:
            self._next_strip += 1
        final = self._strip_starts[self._next_strip] if self._next_strip < len(self._strip_starts) else self._padded_length
        final = min(final, self._length, self._base + self._lines)
        if final <= self._base:
            return
        lines = final - self._base
        scores = self._scores[:, :lines, : self._breadth]
        self._class_ids[self._base : final], best = argmax_and_max(scores, self._limit)
        confidence = best.astype(np.float32)
        confidence *= 255
        confidence /= np.maximum(self._weights[:lines, : self._breadth], 1)
        confidence += 0.5
        self._confidence[self._base : final] = np.minimum(confidence, 255)  # cast truncates: rounds
        self._offset, self._lines, self._base = self._offset + lines, self._lines - lines, final

    @property
    def band_bytes(self) -> int:
        return self._score_buffer.nbytes + self._weight_buffer.nbytes

    def finish(self) -> Segmentation:
        if self.completed < len(self.plan):
            raise RuntimeError(f"Only {self.completed} of {len(self.plan)} tiles were added.")
        if self._t:  # the outputs were allocated in the image's orientation: .T is a contiguous view
            return Segmentation(np.ascontiguousarray(self._class_ids.T), np.ascontiguousarray(self._confidence.T))
        return Segmentation(self._class_ids, self._confidence)


def band_bytes(plan: TilePlan, num_classes: int, tiles_in_flight: int) -> int:
    """An upper bound of the Stitcher's score band when at most `tiles_in_flight` tiles are out at
    once and tiles are added in plan order: the rows of the tile rows those tiles can span."""
    if plan.column_major:
        per_strip, tile_length, length, breadth = (
            len({t.y0 for t in plan.tiles}),
            plan.tiles[0].shape[1],
            plan.padded_width,
            plan.padded_height,
        )
    else:
        per_strip, tile_length, length, breadth = (
            len({t.x0 for t in plan.tiles}),
            plan.tiles[0].shape[0],
            plan.padded_height,
            plan.padded_width,
        )
    strips_spanned = -(-tiles_in_flight // per_strip) + 1
    return min(length, strips_spanned * tile_length) * breadth * (num_classes + 1) * 2
