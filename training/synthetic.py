"""Seeded generator of synthetic drill-core photographs with exact class masks.

A sample is a core box or tray (wood, cardboard or plastic, with dividers, depth labels and
spacer blocks, sometimes on a table or paper among tape, tools, stains, shoe prints and grit, all
of it background) holding one to several core columns, round or slabbed, broken
into pieces with gaps; each piece is a stack of lithology intervals whose textures follow what a
geologist sees: sandstone grain and cross-laminae, dark smooth mudstone with conchoidal breaks,
pale limestone with fossil debris and stylolites, white nodular anhydrite, clasts in a matrix for
conglomerate, alternating laminae for the interlayered facies, mottled grey-green marl, a
weathered rind for crust. Then the camera: lighting gradient, colour cast, blur, noise, rotation,
JPEG artefacts. Long single-column images imitate slabbed-core line scans.

The same `seed` always gives the same image and mask. Run as a command to write a dataset in the
layout of the real data (`images/*.jpg`, `masks/*.png`):

    python -m training.synthetic --out var/data/synthetic --count 500 --seed 0
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pipelines.classes import colour_triple, default_class_table
from training.scene_extras import add_cardboard, add_scene_extras

Rng = np.random.Generator
ROCK_IDS = tuple(c.id for c in default_class_table().rock_classes)
TRAINING_SEEDS_BELOW = 10_000_000  # training draws generator seeds under this; validation and test sets lie above


@dataclass(frozen=True)
class Sample:
    """A synthetic core-box photo and its class-index mask."""

    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) uint8 class ids


# ---------------------------------------------------------------------------------------------
# noise primitives


def value_noise(rng: Rng, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1] with features about `cell` pixels wide."""
    small_h = max(2, int(height / max(cell, 1.0)) + 2)
    small_w = max(2, int(width / max(cell, 1.0)) + 2)
    small = (rng.random((small_h, small_w)) * 255).astype(np.uint8)
    big = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 255.0


def fractal_noise(rng: Rng, height: int, width: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Smooth multi-octave noise in [0, 1]."""
    total = np.zeros((height, width), np.float32)
    amplitude, norm = 1.0, 0.0
    for _ in range(octaves):
        total += amplitude * value_noise(rng, height, width, cell)
        norm += amplitude
        amplitude *= 0.5
        cell = max(1.0, cell / 2)
    return total / norm


def grain(rng: Rng, height: int, width: int, strength: float) -> np.ndarray:
    """Per-pixel grain of the given strength."""
    return (rng.standard_normal((height, width)).astype(np.float32)) * strength


def jitter_color(rng: Rng, base: tuple[int, int, int], spread: float) -> np.ndarray:
    """A colour near `base`, by up to `spread`."""
    return np.clip(np.array(base, np.float32) + rng.normal(0, spread, 3), 0, 255)


def colorize(field: np.ndarray, dark: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Map a [0, 1] field onto a colour ramp between two RGB colours → (H, W, 3) float."""
    field = np.clip(field, 0, 1)[..., None]
    return dark[None, None, :] * (1 - field) + light[None, None, :] * field


def laminae(rng: Rng, height: int, width: int, period: float, angle: float, waviness: float) -> np.ndarray:
    """Periodic bands across the core axis (axis = rows), tilted by `angle` radians, in [0, 1]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    warp = value_noise(rng, height, width, max(8.0, width / 2)) * waviness
    phase = (yy * np.cos(angle) + xx * np.sin(angle)) / period + warp
    irregular = value_noise(rng, height, width, period * 3) * 0.8
    return (0.5 + 0.5 * np.sin(2 * np.pi * (phase + irregular))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# lithology textures: each returns (H, W, 3) float in 0..255 for an interval lying along the rows


def _sandstone(rng: Rng, h: int, w: int) -> np.ndarray:
    light = jitter_color(rng, (200, 180, 140), 18)
    dark = light * rng.uniform(0.7, 0.85)
    field = 0.55 * fractal_noise(rng, h, w, 40) + 0.45 * laminae(rng, h, w, rng.uniform(6, 16), rng.uniform(-0.6, 0.6), 0.6)
    img = colorize(field, dark, light)
    return img + grain(rng, h, w, rng.uniform(8, 16))[..., None]


def _siltstone(rng: Rng, h: int, w: int) -> np.ndarray:
    light = jitter_color(rng, (150, 140, 120), 12)
    dark = light * rng.uniform(0.8, 0.9)
    field = 0.6 * laminae(rng, h, w, rng.uniform(3, 7), rng.uniform(-0.1, 0.1), 0.2) + 0.4 * fractal_noise(rng, h, w, 30)
    return colorize(field, dark, light) + grain(rng, h, w, 5)[..., None]


def _mudstone(rng: Rng, h: int, w: int) -> np.ndarray:
    base = jitter_color(rng, (62, 62, 64), 10)
    img = colorize(fractal_noise(rng, h, w, 60), base * 0.85, base * 1.1)
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(0, 3)):  # conchoidal fractures: curved bright arcs
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(w * 0.3, w)
        start = rng.uniform(0, 360)
        draw.arc([cx - r, cy - r, cx + r, cy + r], start, start + rng.uniform(30, 90), fill=255, width=int(rng.integers(1, 3)))
    arcs = np.asarray(canvas, np.float32)[..., None] / 255.0
    return img * (1 - arcs) + (base * 1.6) * arcs + grain(rng, h, w, 2.5)[..., None]


def _dolomite(rng: Rng, h: int, w: int) -> np.ndarray:
    light = jitter_color(rng, (205, 170, 160), 15)
    dark = light * 0.8
    img = colorize(fractal_noise(rng, h, w, 25), dark, light) + grain(rng, h, w, 12)[..., None]
    vugs = value_noise(rng, h, w, 5) > rng.uniform(0.86, 0.93)
    img[vugs] *= 0.45
    return img


def _limestone(rng: Rng, h: int, w: int) -> np.ndarray:
    light = jitter_color(rng, (215, 212, 200), 10)
    img = colorize(fractal_noise(rng, h, w, 50), light * 0.88, light) + grain(rng, h, w, 4)[..., None]
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(h * w / 1500 * rng.uniform(0.3, 1.0))):  # fossil fragments
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a, b = rng.uniform(1.5, 6), rng.uniform(1, 3)
        draw.ellipse([x - a, y - b, x + a, y + b], fill=int(rng.choice([90, 255])))
    fossils = np.asarray(canvas, np.float32)
    img[fossils == 255] *= 1.08
    img[fossils == 90] *= 0.7
    stylolites = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(stylolites)
    for _ in range(rng.integers(0, 3)):  # jagged dark seams across the core
        y0 = rng.uniform(0, h)
        xs = np.linspace(0, w, max(3, w // 4))
        ys = y0 + np.cumsum(rng.normal(0, 1.5, xs.size))
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=255, width=1)
    seams = np.asarray(stylolites, np.float32)[..., None] / 255.0
    return img * (1 - 0.6 * seams)


def _anhydrite(rng: Rng, h: int, w: int) -> np.ndarray:
    light = jitter_color(rng, (238, 238, 242), 6)
    nodules = value_noise(rng, h, w, rng.uniform(10, 25))
    img = colorize(nodules, light * 0.85, light)
    edges = np.abs(nodules - 0.5) < 0.03  # chicken-wire outlines between nodules
    img[edges] = light * 0.45
    return img + grain(rng, h, w, 3)[..., None]


def _interlayered(rng: Rng, h: int, w: int, light_base: tuple[int, int, int], period: tuple[float, float]) -> np.ndarray:
    light = jitter_color(rng, light_base, 14)
    dark = jitter_color(rng, (60, 60, 62), 8)
    bands = laminae(rng, h, w, rng.uniform(*period), rng.uniform(-0.15, 0.15), 0.4)
    threshold = rng.uniform(0.35, 0.65)
    field: np.ndarray = (bands > threshold).astype(np.float32)
    field = np.asarray(Image.fromarray((field * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8)), np.float32) / 255
    return colorize(field, dark, light) + grain(rng, h, w, 6)[..., None]


def _interlayered_sand_mud(rng: Rng, h: int, w: int) -> np.ndarray:
    return _interlayered(rng, h, w, (195, 175, 135), (8, 30))


def _interlayered_silt_mud(rng: Rng, h: int, w: int) -> np.ndarray:
    return _interlayered(rng, h, w, (140, 132, 118), (3, 10))


def _conglomerate(rng: Rng, h: int, w: int) -> np.ndarray:
    matrix = jitter_color(rng, (170, 150, 120), 15)
    img = colorize(fractal_noise(rng, h, w, 20), matrix * 0.8, matrix) + grain(rng, h, w, 10)[..., None]
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(h * w / 400 * rng.uniform(0.4, 0.9))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(2, max(3.0, w / 6))
        color = tuple(
            int(c) for c in rng.choice([[90, 90, 95], [210, 205, 195], [160, 90, 70], [120, 130, 110], [40, 40, 45]]) + rng.normal(0, 10, 3)
        )
        draw.ellipse(
            [x - r, y - r * rng.uniform(0.5, 1), x + r, y + r * rng.uniform(0.5, 1)], fill=color, outline=tuple(int(c * 0.7) for c in color)
        )
    return np.asarray(canvas, np.float32) + grain(rng, h, w, 4)[..., None]


def _crust(rng: Rng, h: int, w: int) -> np.ndarray:
    light = jitter_color(rng, (185, 110, 60), 20)
    dark = jitter_color(rng, (95, 50, 30), 12)
    field = fractal_noise(rng, h, w, 12, octaves=4)
    img = colorize(field, dark, light) + grain(rng, h, w, 14)[..., None]
    pits = value_noise(rng, h, w, 3) > 0.85
    img[pits] *= 0.6
    return img


def _marl(rng: Rng, h: int, w: int) -> np.ndarray:
    light = jitter_color(rng, (150, 165, 145), 12)
    dark = jitter_color(rng, (100, 115, 100), 10)
    field = fractal_noise(rng, h, w, rng.uniform(15, 35), octaves=2)
    return colorize(field, dark, light) + grain(rng, h, w, 4)[..., None]


TEXTURES: dict[int, Callable[[Rng, int, int], np.ndarray]] = {
    1: _sandstone,
    2: _siltstone,
    3: _mudstone,
    4: _dolomite,
    5: _limestone,
    6: _anhydrite,
    7: _interlayered_sand_mud,
    8: _interlayered_silt_mud,
    9: _conglomerate,
    10: _crust,
    11: _marl,
}


def render_lithology(rng: Rng, class_id: int, height: int, width: int) -> np.ndarray:
    """(height, width, 3) float RGB texture of `class_id` with the core axis along the rows."""
    return TEXTURES[class_id](rng, height, width)


# ---------------------------------------------------------------------------------------------
# trays, boxes and the scene


def _tray_texture(rng: Rng, h: int, w: int) -> np.ndarray:
    kind = rng.choice(["wood", "cardboard", "plastic_dark", "plastic_light", "plastic_color"])
    if kind == "wood":
        base = jitter_color(rng, (150, 105, 65), 20)
        stripes = laminae(rng, h, w, rng.uniform(4, 12), np.pi / 2 + rng.normal(0, 0.05), 1.5)
        return colorize(0.6 * stripes + 0.4 * fractal_noise(rng, h, w, 40), base * 0.7, base * 1.1)
    if kind == "cardboard":
        base = jitter_color(rng, (180, 150, 110), 15)
        return colorize(fractal_noise(rng, h, w, 60), base * 0.85, base) + grain(rng, h, w, 4)[..., None]
    if kind == "plastic_dark":
        base = jitter_color(rng, (45, 45, 50), 10)
    elif kind == "plastic_light":
        base = jitter_color(rng, (200, 200, 195), 15)
    else:
        base = jitter_color(rng, colour_triple(rng.choice([[40, 80, 160], [170, 40, 40], [60, 140, 70], [210, 160, 40]])), 15)
    return colorize(fractal_noise(rng, h, w, 120), base * 0.85, base * 1.05)


def _draw_label(draw: ImageDraw.ImageDraw, rng: Rng, box: tuple[float, float, float, float]) -> None:
    """A depth label or a foam spacer: a pale block with dark marker strokes."""
    x0, y0, x1, y1 = box
    fill = tuple(int(v) for v in rng.choice([[240, 240, 235], [245, 230, 120], [230, 120, 150], [90, 140, 220]]))
    draw.rectangle(box, fill=fill)
    for _ in range(rng.integers(2, 6)):
        ax, ay = rng.uniform(x0, x1), rng.uniform(y0, y1)
        bx, by = ax + rng.uniform(-(x1 - x0) / 3, (x1 - x0) / 3), ay + rng.uniform(-(y1 - y0) / 3, (y1 - y0) / 3)
        draw.line([ax, ay, bx, by], fill=(20, 20, 30), width=int(rng.integers(1, 3)))


def _paint_column(
    rng: Rng, image: np.ndarray, mask: np.ndarray, x0: int, x1: int, y0: int, y1: int, slabbed: bool, class_pool: np.ndarray
) -> None:
    """Fill the core channel [y0, y1) × [x0, x1) with pieces, gaps, spacers and intervals."""
    width = x1 - x0
    y = y0
    overlay = Image.fromarray(image)
    draw = ImageDraw.Draw(overlay)
    labels: list[tuple[float, float, float, float]] = []
    while y < y1 - 4:
        roll = rng.random()
        if roll < 0.07:  # spacer block or depth label across the channel
            length = int(rng.uniform(0.3, 1.2) * width)
            labels.append((x0, y, x1, min(y1, y + length)))
            y += length
            continue
        piece = int(rng.uniform(0.5, 6) * width)
        piece_end = min(y1, y + piece)
        _paint_piece(rng, image, mask, x0, x1, y, piece_end, slabbed, class_pool)
        y = piece_end + int(rng.choice([0, 0, 1, 2, 4, 8, 15]) * rng.uniform(0.5, 1.5))  # breaks and gaps
    overlay = Image.fromarray(image)
    draw = ImageDraw.Draw(overlay)
    for box in labels:
        _draw_label(draw, rng, box)
        mask[int(box[1]) : int(box[3]) + 1, x0:x1] = 0
    image[:] = np.asarray(overlay)


def _foam(rng: Rng, h: int, w: int) -> np.ndarray:
    """Expanded polystyrene as empty slots of core boxes are packed with: nearly white, a fine
    relief of beads, shallow round dimples and, on some blocks, moulded ridges along the block;
    (h, w, 3) float in 0..255."""
    shade = rng.uniform(226, 248) + (value_noise(rng, h, w, rng.uniform(2.5, 5.0)) - 0.5) * rng.uniform(10, 24)
    shade += (fractal_noise(rng, h, w, max(h, w) / 3) - 0.5) * 14
    shade += (fractal_noise(rng, h, w, max(3.0, w / 6)) - 0.5) * rng.uniform(6, 20)  # lumps
    if rng.random() < 0.5:  # a round block, cut to fit a channel: shaded across like round core
        across = np.linspace(-1, 1, w, dtype=np.float32)
        shade *= 0.82 + 0.18 * np.sqrt(np.clip(1 - across**2, 0, 1))[None, :]
    if rng.random() < 0.3:
        shade += (laminae(rng, h, w, rng.uniform(6, 14), np.pi / 2 + rng.normal(0, 0.05), 0.8) - 0.5) * rng.uniform(8, 18)
    for _ in range(int(rng.integers(0, 2 + h * w // 2000))):
        radius = rng.uniform(2, 9)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        y0, y1 = max(0, int(cy - radius)), min(h, int(cy + radius) + 1)
        x0, x1 = max(0, int(cx - radius)), min(w, int(cx + radius) + 1)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        hollow = np.clip(1 - ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2, 0, 1)
        shade[y0:y1, x0:x1] -= hollow * rng.uniform(8, 25)
    shade += grain(rng, h, w, rng.uniform(1.5, 4))
    return shade[..., None] + rng.uniform(-4, 4, 3).astype(np.float32)


def _pack_slots(rng: Rng, image: np.ndarray, mask: np.ndarray, slots: list[tuple[int, int]], y0: int, y1: int) -> None:
    """Fill the ends of most columns' slots (x0, x1) with foam blocks across the slot's whole
    width, over whatever core lay there, as boxes whose core does not fill its columns are packed;
    background in the mask."""
    length = y1 - y0
    for x0, x1 in slots:
        if rng.random() < 0.3 or x1 - x0 < 4:
            continue
        where = rng.choice(["start", "end", "both"], p=[0.4, 0.4, 0.2])
        stretches = []
        if where in ("start", "both"):
            stretches.append((y0, y0 + int(length * rng.uniform(0.08, 0.45)), -1))
        if where in ("end", "both"):
            stretches.append((y1 - int(length * rng.uniform(0.08, 0.45)), y1, 0))
        for a, b, contact in stretches:
            if b - a < 4:
                continue
            foam = _foam(rng, b - a, x1 - x0)
            foam[contact] *= 0.8  # the shadow where the block meets the core
            block = Image.fromarray(np.clip(foam, 0, 255).astype(np.uint8))
            if rng.random() < 0.5:  # the depth written on the block in marker, at the column's end
                size = max(6, int((x1 - x0) * rng.uniform(0.12, 0.25)))
                end = 2 if contact else b - a - size - 4
                ImageDraw.Draw(block).text(
                    (rng.uniform(0, (x1 - x0) * 0.3), max(0, end)),
                    f"{rng.uniform(10, 4000):.1f}",
                    fill=(int(rng.integers(10, 50)),) * 3,
                    font=ImageFont.load_default(size=size),
                )
            image[a:b, x0:x1] = np.asarray(block)
            mask[a:b, x0:x1] = 0


def _paint_piece(
    rng: Rng, image: np.ndarray, mask: np.ndarray, x0: int, x1: int, y0: int, y1: int, slabbed: bool, class_pool: np.ndarray
) -> None:
    height, width = y1 - y0, x1 - x0
    if height < 3 or width < 3:
        return
    rgb = np.zeros((height, width, 3), np.float32)
    ids = np.zeros((height, width), np.uint8)
    y = 0
    while y < height:
        class_id = int(rng.choice(class_pool))
        length = int(max(4, rng.uniform(0.4, 4.0) * width))
        end = min(height, y + length)
        rgb[y:end] = render_lithology(rng, class_id, end - y, width)
        ids[y:end] = class_id
        y = end
    # irregular, slightly tilted contacts between intervals are left straight: the masks stay exact.
    profile: np.ndarray = np.ones(width, np.float32)
    xs = np.linspace(-1, 1, width)
    if not slabbed:  # round core: darker towards the edges of the cylinder, a soft highlight
        profile = 0.55 + 0.45 * np.sqrt(np.clip(1 - xs**2, 0, 1)) + 0.08 * np.exp(-((xs + 0.3) ** 2) / 0.05)
    rgb *= profile[None, :, None]
    # crust: weathered rind on the surface of some pieces
    if rng.random() < 0.08 and 10 in class_pool:
        rind = max(2, int(width * rng.uniform(0.06, 0.15)))
        rgb[:, :rind] = _crust(rng, height, rind)
        ids[:, :rind] = 10
    # ragged piece ends: rock only inside a slightly irregular outline
    outline = np.ones((height, width), bool)
    edge_noise = value_noise(rng, 2, width, max(2.0, width / 6))
    top = (edge_noise[0] * min(height / 3, width * 0.15)).astype(int)
    bottom = (edge_noise[1] * min(height / 3, width * 0.15)).astype(int)
    rows = np.arange(height)[:, None]
    outline &= rows >= top[None, :]
    outline &= rows < (height - bottom)[None, :]
    if not slabbed:
        inset = max(1, int(width * 0.03))
        outline[:, :inset] = False
        outline[:, -inset:] = False
    region_rgb = image[y0:y1, x0:x1]
    region_ids = mask[y0:y1, x0:x1]
    region_rgb[outline] = np.clip(rgb[outline], 0, 255).astype(np.uint8)
    region_ids[outline] = ids[outline]


def generate_sample(
    seed: int,
    height: int | None = None,
    width: int | None = None,
    floor_fraction: float = 0.0,
    scene_fraction: float = 0.0,
    packing_fraction: float = 0.0,
    cardboard_fraction: float = 0.0,
) -> Sample:
    """One synthetic core photo and its exact mask. Same seed, same sample. `floor_fraction`: the
    share of boxes photographed on a textured floor (hard negatives, `FLOORS`) rather than a table;
    `scene_fraction`: the share of photos with `training.scene_extras` (colour checker, header,
    scale bar, sleeve, dark/white/wet/dry core); `packing_fraction`: the share of boxes whose
    columns' ends are packed with white foam blocks across the slot (`_pack_slots`);
    `cardboard_fraction`: the share of photos whose box is worn cardboard, stained, with its flaps
    open beside it (`training.scene_extras.add_cardboard`). Each from a
    random stream of its own: at 0 every sample is exactly as before they existed."""
    rng = np.random.default_rng(seed)
    style = rng.choice(["box", "box", "box", "scan", "tray"])
    if height is None or width is None:
        if style == "scan":
            height, width = int(rng.integers(900, 2400)), int(rng.integers(96, 320))
        else:
            height, width = int(rng.integers(320, 1100)), int(rng.integers(320, 1100))
    n_columns = 1 if style in ("scan", "tray") else int(rng.integers(1, 7))
    margin = int(min(height, width) * (0.0 if style == "scan" else rng.uniform(0.02, 0.12)))
    image = np.clip(_tray_texture(rng, height, width), 0, 255).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    # a subset of lithologies per photo, as in real boxes, sometimes all of them
    pool_size = int(rng.choice([1, 2, 2, 3, 3, 4, 6, 11]))
    class_pool = rng.choice(np.array(ROCK_IDS), size=min(pool_size, len(ROCK_IDS)), replace=False)
    inner_w = width - 2 * margin
    channel = inner_w / n_columns
    divider = max(1, int(channel * rng.uniform(0.04, 0.15))) if n_columns > 1 else 0
    slabbed = bool(rng.random() < 0.45) or style == "scan"
    slots = []
    for column in range(n_columns):
        cx0 = int(margin + column * channel + divider / 2)
        cx1 = int(margin + (column + 1) * channel - divider / 2)
        slots.append((cx0, cx1))
        fill = rng.uniform(0.75, 0.98) if style != "scan" else 1.0
        core_w = max(4, int((cx1 - cx0) * fill))
        offset = cx0 + (cx1 - cx0 - core_w) // 2
        _paint_column(rng, image, mask, offset, offset + core_w, margin, height - margin, slabbed, class_pool)
    packing_rng = np.random.default_rng([seed, 0xF0A3])
    if packing_fraction and style == "box" and packing_rng.random() < packing_fraction:
        _pack_slots(packing_rng, image, mask, slots, margin, height - margin)
    if rng.random() < 0.5:  # columns run across the photo about as often as down it
        image, mask = np.ascontiguousarray(np.rot90(image)), np.ascontiguousarray(np.rot90(mask))
    if style != "scan" and rng.random() < 0.45:
        floor_rng = np.random.default_rng([seed, 0xF100])  # its own stream: without floors, nothing else changes
        if floor_fraction and floor_rng.random() < floor_fraction:
            image, mask = _place_on_floor(floor_rng, image, mask)
        else:
            image, mask = _place_on_table(rng, image, mask)
    cardboard_rng = np.random.default_rng([seed, 0xCA4D])
    if cardboard_fraction and style != "scan" and cardboard_rng.random() < cardboard_fraction:
        image, mask = add_cardboard(cardboard_rng, image, mask)
    scene_rng = np.random.default_rng([seed, 0x5CE5])
    if scene_fraction and scene_rng.random() < scene_fraction:
        image, mask = add_scene_extras(scene_rng, image, mask)
    image = _camera(rng, image)
    image, mask = _rotate(rng, image, mask)
    return Sample(image=image, mask=mask)


FLOORS = ("terrazzo", "granite", "concrete", "gravel", "carpet", "tiles")


def _place_on_table(rng: Rng, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box photographed from above on a table or paper, with tape, a ruler, pen marks and dirt around it."""
    big_h, big_w = mask.shape  # the photo keeps its size; the box shrinks into the scene
    scale = rng.uniform(0.45, 0.9)
    h, w = max(8, int(big_h * scale)), max(8, int(big_w * scale))
    image = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))
    mask = np.asarray(Image.fromarray(mask).resize((w, h), Image.Resampling.NEAREST))
    pad_y, pad_x = int(rng.integers(0, big_h - h + 1)), int(rng.integers(0, big_w - w + 1))
    base = jitter_color(
        rng, colour_triple(rng.choice([[240, 238, 234], [235, 235, 230], [215, 210, 200], [160, 120, 85], [120, 120, 125]])), 10
    )
    table = colorize(fractal_noise(rng, big_h, big_w, 80), base * 0.9, base) + grain(rng, big_h, big_w, 3)[..., None]
    canvas = Image.fromarray(np.clip(table, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 4))):  # overlapping sheets of paper with a faint edge
        x, y = rng.uniform(-big_w / 2, big_w), rng.uniform(-big_h / 2, big_h)
        sheet = tuple(int(v) for v in jitter_color(rng, (238, 238, 235), 8))
        draw.rectangle(
            [x, y, x + rng.uniform(big_w / 4, big_w), y + rng.uniform(big_h / 4, big_h)], fill=sheet, outline=tuple(v - 25 for v in sheet)
        )
    for _ in range(int(rng.integers(0, 12))):  # tape, labels, tools
        x, y = rng.uniform(0, big_w), rng.uniform(0, big_h)
        bw, bh = rng.uniform(10, big_w / 6), rng.uniform(8, big_h / 8)
        colour = tuple(int(v) for v in rng.choice([[40, 150, 190], [30, 30, 35], [200, 200, 205], [220, 190, 60], [180, 60, 50]]))
        draw.rectangle([x, y, x + bw, y + bh], fill=colour)
    for _ in range(int(rng.integers(0, 30))):  # pen marks and scribbles
        x, y = rng.uniform(0, big_w), rng.uniform(0, big_h)
        draw.line([x, y, x + rng.normal(0, 15), y + rng.normal(0, 15)], fill=(60, 60, 70), width=1)
    table_rgb = _soil(rng, np.array(canvas), (pad_y + h / 2, pad_x + w / 2)) if rng.random() < 0.7 else np.array(canvas)
    table_rgb[pad_y : pad_y + h, pad_x : pad_x + w] = image
    big_mask = np.zeros((big_h, big_w), np.uint8)
    big_mask[pad_y : pad_y + h, pad_x : pad_x + w] = mask
    return table_rgb, big_mask


def _speckle(rng: Rng, h: int, w: int, colours: list[tuple[int, int, int]], density: float, size: tuple[float, float]) -> np.ndarray:
    """A base of the first colour strewn with chips of the others: terrazzo, granite, gravel."""
    base = jitter_color(rng, colours[0], 10)
    canvas = Image.fromarray(np.clip(colorize(fractal_noise(rng, h, w, 40), base * 0.9, base), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    count = int(density * h * w / max(1.0, size[1] ** 2))
    for _ in range(min(count, 60_000)):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(*size)
        colour = tuple(int(v) for v in jitter_color(rng, colours[int(rng.integers(1, len(colours)))], 18))
        draw.ellipse([x - r, y - r * rng.uniform(0.6, 1.0), x + r, y + r * rng.uniform(0.6, 1.0)], fill=colour)
    return np.asarray(canvas, np.float32)


def _floor_texture(rng: Rng, h: int, w: int) -> np.ndarray:
    """A floor a core box is photographed on: terrazzo, granite, concrete, gravel, carpet or tiles."""
    kind = str(rng.choice(list(FLOORS)))
    if kind == "terrazzo":
        rgb = _speckle(rng, h, w, [(200, 195, 185), (120, 110, 100), (60, 60, 62), (230, 225, 215), (150, 90, 70)], 0.35, (1.5, 7))
    elif kind == "granite":
        rgb = _speckle(rng, h, w, [(150, 140, 135), (40, 38, 40), (215, 205, 200), (170, 120, 110)], 0.9, (0.6, 2.5))
    elif kind == "gravel":
        rgb = _speckle(rng, h, w, [(120, 115, 105), (160, 150, 135), (90, 85, 80), (185, 175, 160), (70, 65, 60)], 2.5, (3, 12))
    elif kind == "concrete":
        base = jitter_color(rng, (150, 150, 148), 15)
        rgb = colorize(fractal_noise(rng, h, w, 30), base * 0.8, base) + grain(rng, h, w, 10)[..., None]
        pores = (fractal_noise(rng, h, w, 2) > 0.93)[..., None]
        rgb = np.where(pores, rgb * 0.55, rgb)
    elif kind == "carpet":
        base = jitter_color(rng, colour_triple(rng.choice([[110, 40, 40], [60, 70, 110], [90, 90, 85], [120, 100, 70]])), 15)
        rgb = colorize(fractal_noise(rng, h, w, 6), base * 0.75, base) + grain(rng, h, w, 18)[..., None]
    else:  # tiles: squares with grout lines
        base = jitter_color(rng, colour_triple(rng.choice([[225, 222, 215], [180, 170, 155], [120, 125, 130]])), 12)
        rgb = colorize(fractal_noise(rng, h, w, 60), base * 0.93, base) + grain(rng, h, w, 3)[..., None]
        step = int(rng.uniform(0.12, 0.35) * min(h, w)) + 8
        grout = max(1, step // 40)
        shade = jitter_color(rng, (95, 90, 85), 15)
        for start in range(int(rng.integers(0, step)), h, step):
            rgb[start : start + grout] = shade
        for start in range(int(rng.integers(0, step)), w, step):
            rgb[:, start : start + grout] = shade
    return np.clip(rgb, 0, 255)


def _place_on_floor(rng: Rng, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box photographed from above on a textured floor, all of it background (hard negatives:
    terrazzo and gravel look like conglomerate, granite like a speckled sandstone), with a shadow."""
    big_h, big_w = mask.shape
    scale = rng.uniform(0.45, 0.9)
    h, w = max(8, int(big_h * scale)), max(8, int(big_w * scale))
    image = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))
    mask = np.asarray(Image.fromarray(mask).resize((w, h), Image.Resampling.NEAREST))
    pad_y, pad_x = int(rng.integers(0, big_h - h + 1)), int(rng.integers(0, big_w - w + 1))
    floor = _floor_texture(rng, big_h, big_w)
    shift = int(rng.uniform(0.01, 0.04) * min(big_h, big_w))  # the box's shadow, down and to the right
    floor[pad_y + shift : pad_y + h + shift, pad_x + shift : pad_x + w + shift] *= rng.uniform(0.5, 0.8)
    floor_rgb = np.clip(floor, 0, 255).astype(np.uint8)
    floor_rgb[pad_y : pad_y + h, pad_x : pad_x + w] = image
    big_mask = np.zeros((big_h, big_w), np.uint8)
    big_mask[pad_y : pad_y + h, pad_x : pad_x + w] = mask
    return floor_rgb, big_mask


def _soil(rng: Rng, table: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """Dirt on the paper around a box, all of it background: faint stains (sometimes smeared rock
    texture), shoe-print rings, and grit fallen from the core, densest near the box."""
    big_h, big_w = table.shape[:2]
    rgb = table.astype(np.float32)
    for _ in range(int(rng.integers(1, 5))):  # stains and smears, 5-35 % opaque
        sh, sw = int(rng.uniform(0.15, 0.6) * big_h) + 4, int(rng.uniform(0.15, 0.6) * big_w) + 4
        y0, x0 = int(rng.integers(0, max(1, big_h - sh))), int(rng.integers(0, max(1, big_w - sw)))
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        ellipse = np.clip(1 - ((yy / sh - 0.5) ** 2 + (xx / sw - 0.5) ** 2) * 4, 0, 1)
        blot = np.clip((fractal_noise(rng, sh, sw, min(sh, sw) / 4) - 0.35) * 3, 0, 1) * ellipse
        if rng.random() < 0.4:
            colour = render_lithology(rng, int(rng.choice(ROCK_IDS)), sh, sw)
        else:
            colour = np.broadcast_to(jitter_color(rng, (135, 115, 90), 25), (sh, sw, 3))
        alpha = (blot * rng.uniform(0.05, 0.35))[..., None]
        rgb[y0 : y0 + sh, x0 : x0 + sw] = rgb[y0 : y0 + sh, x0 : x0 + sw] * (1 - alpha) + colour * alpha
    marks = Image.new("L", (big_w, big_h), 0)
    draw = ImageDraw.Draw(marks)
    for _ in range(int(rng.integers(0, 4))):  # shoe or cup prints: sets of concentric rings
        cx, cy, radius = rng.uniform(0, big_w), rng.uniform(0, big_h), rng.uniform(0.02, 0.08) * min(big_h, big_w)
        for k in range(int(rng.integers(2, 8))):
            r = radius * (1 - k * 0.12)
            if r > 1:
                draw.ellipse([cx - r, cy - r * 0.8, cx + r, cy + r * 0.8], outline=int(rng.uniform(40, 110)), width=1)
    n_grit = int(rng.integers(0, 400))  # grit: small dark specks scattered around the box
    ys = rng.normal(centre[0], big_h * rng.uniform(0.15, 0.5), n_grit)
    xs = rng.normal(centre[1], big_w * rng.uniform(0.15, 0.5), n_grit)
    for y, x, r in zip(ys, xs, rng.uniform(0.5, 2.5, n_grit), strict=True):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.uniform(120, 230)))
    darken = np.asarray(marks, np.float32)[..., None] / 255.0
    grit_colour = jitter_color(rng, (70, 60, 50), 15)
    rgb = rgb * (1 - darken) + grit_colour * darken
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _camera(rng: Rng, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    rgb: np.ndarray = image.astype(np.float32)
    light = 1 + (value_noise(rng, h, w, max(h, w) / 1.5) - 0.5) * rng.uniform(0.2, 0.7)
    cast = rng.normal(1, 0.06, 3).astype(np.float32)
    rgb = rgb * light[..., None] * cast[None, None, :] * rng.uniform(0.75, 1.2)
    rgb += rng.normal(0, rng.uniform(1, 6), rgb.shape).astype(np.float32)
    out = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    buffer = io.BytesIO()
    out.save(buffer, format="JPEG", quality=int(rng.integers(55, 96)))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _rotate(rng: Rng, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() > 0.3:
        return image, mask
    angle = float(rng.uniform(-6, 6))
    fill = tuple(int(v) for v in image.reshape(-1, 3).mean(0))
    rotated = Image.fromarray(image).rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=fill)
    rotated_mask = Image.fromarray(mask).rotate(angle, resample=Image.Resampling.NEAREST, fillcolor=0)
    return np.asarray(rotated), np.asarray(rotated_mask)


def write_dataset(out_dir: str | Path, count: int, seed: int) -> Path:
    """Write `count` samples with seeds seed..seed+count-1 as images/*.jpg + masks/*.png."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    entries = []
    for sample_seed in range(seed, seed + count):
        sample = generate_sample(sample_seed)
        name = f"synth{sample_seed:06d}"
        Image.fromarray(sample.image).save(out / "images" / f"{name}.jpg", quality=92)
        Image.fromarray(sample.mask, mode="L").save(out / "masks" / f"{name}.png")
        entries.append({"id": name, "seed": sample_seed, "size": [sample.image.shape[1], sample.image.shape[0]]})
    (out / "manifest.json").write_text(json.dumps({"generator": "training.synthetic", "photos": entries}, indent=1))
    (out / "classes.json").write_text(json.dumps({"classes": default_class_table().to_records()}, indent=1))
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m training.synthetic`: write synthetic photos and masks to a folder."""
    parser = argparse.ArgumentParser(description="Write a synthetic core-photo dataset (images/*.jpg, masks/*.png).")
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write_dataset(args.out, args.count, args.seed)
    print(f"wrote {args.count} samples to {path}")


if __name__ == "__main__":
    main()
