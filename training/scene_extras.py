"""What users' photos of core have that the plain synthetic box lacks (issue 23, "training scenes
like the photos users take"): things laid on and around the box — a colour checker, a printed
header with the well and depth, a scale bar —, white packing (foam, crumpled plastic) filling the
empty stretches of the box's columns, a plastic sleeve's sheen over the core, and core at the ends
of the tone range — nearly black shale, nearly white anhydrite and chalk, wet (dark,
saturated, with highlights) or dry (pale, dusty).

Everything laid on the photo is background in the mask, also where it covers core; packing lies
beside the core, on background only (a held-out photo whose empty slots were packed white lost
its rock IoU to them, docs/crossval.md); the sheen and
the tones change how the rock looks, never its class. `generate_sample(scene_fraction=...)`
calls `add_scene_extras` from a random stream of its own, so with the fraction at 0 every sample
is the one it was before these existed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Rng = np.random.Generator

MUDSTONE, ANHYDRITE, LIMESTONE, DOLOMITE, MARL = 3, 6, 5, 4, 11
SHALE_LIKE = (MUDSTONE, 8)  # mudstone, interlayered siltstones and mudstones: can be nearly black
PALE = (ANHYDRITE, LIMESTONE, DOLOMITE, MARL)  # can be nearly white (anhydrite, chalk)
TONES = ("dark shale", "white core", "wet", "dry")

# the 24 patches of a ColorChecker Classic, sRGB, row by row
CHECKER = (
    (115, 82, 68), (194, 150, 130), (98, 122, 157), (87, 108, 67), (133, 128, 177), (103, 189, 170),
    (214, 126, 44), (80, 91, 166), (193, 90, 99), (94, 60, 108), (157, 188, 64), (224, 163, 46),
    (56, 61, 150), (70, 148, 73), (175, 54, 60), (231, 199, 31), (187, 86, 149), (8, 133, 161),
    (243, 243, 242), (200, 200, 200), (160, 160, 160), (122, 122, 121), (85, 85, 85), (52, 52, 52),
)  # fmt: skip


def add_scene_extras(rng: Rng, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` and `mask` with some of the extras, each drawn with its own chance; new arrays."""
    image, mask = image.copy(), mask.copy()
    if rng.random() < 0.5:
        _tone(rng, image, mask, str(rng.choice(TONES)))
    if rng.random() < 0.3:
        _packing(rng, image, mask)
    if rng.random() < 0.25:
        _sleeve(rng, image, mask)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    height, width = mask.shape
    placed = []
    if rng.random() < 0.4:
        placed.append(_colour_checker(rng, draw, height, width))
    if rng.random() < 0.5:
        placed.append(_header(rng, draw, height, width))
    if rng.random() < 0.4:
        placed.append(_scale_bar(rng, draw, height, width))
    for x0, y0, x1, y1 in placed:  # on top of everything: background, also over core
        mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 0
    return np.asarray(canvas).copy(), mask


def _tone(rng: Rng, image: np.ndarray, mask: np.ndarray, kind: str) -> None:
    """Core at an end of the tone range, in place: classes keep their labels."""
    rgb = image.astype(np.float32)
    if kind == "dark shale":  # shale and dark mudstone, nearly black
        where = np.isin(mask, SHALE_LIKE)
        rgb = np.where(where[..., None], rgb * rng.uniform(0.12, 0.35) + rng.uniform(2, 10), rgb)
    elif kind == "white core":  # anhydrite, chalk: nearly white
        where = np.isin(mask, PALE)
        rgb = np.where(where[..., None], rgb + (250 - rgb) * rng.uniform(0.55, 0.85), rgb)
    elif kind == "wet":  # every piece darker and more saturated, with specular glints
        where = mask > 0
        grey = rgb.mean(axis=2, keepdims=True)
        wet = (grey + (rgb - grey) * rng.uniform(1.2, 1.6)) * rng.uniform(0.55, 0.8)
        glints = (rng.random(mask.shape) < rng.uniform(0.0005, 0.004))[..., None]
        wet = np.where(glints, 245.0, wet)
        rgb = np.where(where[..., None], wet, rgb)
    else:  # dry and dusty: paler, washed out
        where = mask > 0
        grey = rgb.mean(axis=2, keepdims=True)
        dry = grey + (rgb - grey) * rng.uniform(0.4, 0.8)
        rgb = np.where(where[..., None], dry + (225 - dry) * rng.uniform(0.15, 0.4), rgb)
    image[:] = np.clip(rgb, 0, 255).astype(np.uint8)


def columns_run_down(mask: np.ndarray) -> bool:
    """Whether the box's columns of core run down the photo (the longest run of rock is a column)."""
    rock = mask > 0
    return bool(rock.sum(axis=0).max(initial=0) >= rock.sum(axis=1).max(initial=0))


def _packing(rng: Rng, image: np.ndarray, mask: np.ndarray) -> None:
    """White packing — foam, bubble wrap, crumpled plastic — in a few stretches along the
    columns, in place: painted on background pixels only, so the mask does not change. Its
    texture is soft creases (smooth noise) with fine grain, nearly white, as in boxes whose empty
    slots are packed."""
    height, width = mask.shape
    along_rows = columns_run_down(mask)
    ys, xs = np.nonzero(mask[::8, ::8] == 0)  # each stretch centred on background: beside the core, in its empty slots
    long_side, short_side = (height, width) if along_rows else (width, height)
    for _ in range(int(rng.integers(1, 5))):
        length = int(long_side * rng.uniform(0.1, 0.4))
        breadth = int(short_side * rng.uniform(0.04, 0.2))
        if length < 4 or breadth < 4:
            continue
        h, w = (length, breadth) if along_rows else (breadth, length)
        if not len(ys):
            return
        pick = int(rng.integers(0, len(ys)))
        y0 = int(np.clip(ys[pick] * 8 - h // 2, 0, max(0, height - h)))
        x0 = int(np.clip(xs[pick] * 8 - w // 2, 0, max(0, width - w)))
        coarse = rng.random((max(2, h // 12), max(2, w // 12))).astype(np.float32)
        creases = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), np.float32)
        shade = rng.uniform(205, 245) - 45 * np.abs(creases - 0.5) * rng.uniform(0.5, 1.5)  # darker along the folds
        grain = rng.normal(0, rng.uniform(2, 7), (h, w)).astype(np.float32)
        tint = rng.uniform(-6, 6, 3).astype(np.float32)  # slightly warm or cool white
        paint = np.clip((shade + grain)[..., None] + tint, 0, 255).astype(np.uint8)
        region = image[y0 : y0 + h, x0 : x0 + w]
        free = mask[y0 : y0 + h, x0 : x0 + w] == 0
        region[free] = paint[free]


def add_cardboard(rng: Rng, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` with the cardboard of a worn core box around its core, mask unchanged; new arrays.

    What a drone photo of a cardboard box shows that the plain synthetic box lacks, and what
    held-out photos lost their outline to (docs/crossval.md, fold 0: a box's flap and stained
    walls called rock): water and dirt stains on the walls and dividers between the columns, and
    the box's flaps lying open beside it, buff like the sandstone inside, creased and shaded. Both
    are painted on background only."""
    image, mask = image.copy(), mask.copy()
    rows, columns = np.nonzero(mask)
    if not len(rows):
        return image, mask
    top, bottom, left, right = int(rows.min()), int(rows.max()) + 1, int(columns.min()), int(columns.max()) + 1
    if rng.random() < 0.8:
        _stains(rng, image, mask, (top, bottom, left, right))
    for _ in range(int(rng.integers(1, 3))):
        _flap(rng, image, mask, (top, bottom, left, right))
    return image, mask


def _smooth_noise(rng: Rng, h: int, w: int, cell: float) -> np.ndarray:
    """(h, w) float32 noise in 0-1, smooth over about `cell` pixels (a coarse grid, bicubic)."""
    coarse = rng.random((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2))).astype(np.float32)
    return np.clip(np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), np.float32), 0, 1)


def _stains(rng: Rng, image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Blotches of water and dirt, darker and browner, on the background inside the core's box
    (walls, dividers, empty slots) and a little around it, in place."""
    top, bottom, left, right = box
    height, width = mask.shape
    grow = int(0.05 * max(bottom - top, right - left))
    y0, y1, x0, x1 = max(0, top - grow), min(height, bottom + grow), max(0, left - grow), min(width, right + grow)
    h, w = y1 - y0, x1 - x0
    blotches = _smooth_noise(rng, h, w, rng.uniform(0.06, 0.2) * max(h, w))
    edge = _smooth_noise(rng, h, w, rng.uniform(3, 10))  # a ragged rim, as a dried stain has
    stained = np.clip((blotches + 0.1 * edge - rng.uniform(0.5, 0.7)) * rng.uniform(2, 5), 0, 1)
    darker = rng.uniform(0.6, 0.85)
    factor = 1 - stained[..., None] * (1 - darker * np.array([1.0, 0.95, 0.85], np.float32))  # browner as it darkens
    region = image[y0:y1, x0:x1]
    free = mask[y0:y1, x0:x1] == 0
    region[free] = np.clip(region.astype(np.float32) * factor, 0, 255).astype(np.uint8)[free]


def _flap(rng: Rng, image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """One of the box's flaps lying open beside it: a buff panel along one side of the core's box,
    shaded across (it lies at an angle), creased along its fold, stained, in place."""
    top, bottom, left, right = box
    height, width = mask.shape
    side = str(rng.choice(["top", "bottom", "left", "right"]))
    across = rng.uniform(0.1, 0.45)
    if side in ("top", "bottom"):
        depth = max(4, int(across * (bottom - top)))
        y0, h = (top - depth if side == "top" else bottom), depth
        x0, w = left + int(rng.integers(-depth, depth + 1)), right - left
    else:
        depth = max(4, int(across * (right - left)))
        x0, w = (left - depth if side == "left" else right), depth
        y0, h = top + int(rng.integers(-depth, depth + 1)), bottom - top
    ya, yb, xa, xb = max(0, y0), min(height, y0 + h), max(0, x0), min(width, x0 + w)
    if yb - ya < 2 or xb - xa < 2:
        return
    h, w = yb - ya, xb - xa
    base = np.clip(np.array([178, 146, 104], np.float32) * rng.uniform(0.7, 1.15) + rng.normal(0, 5, 3), 40, 235)
    start, stop = rng.uniform(0.75, 1.05, 2)
    ramp = np.linspace(float(start), float(stop), w if side in ("left", "right") else h, dtype=np.float32)
    shade = ramp[None, :] if side in ("left", "right") else ramp[:, None]
    texture = 0.9 + 0.1 * _smooth_noise(rng, h, w, rng.uniform(20, 60)) + rng.normal(0, 0.015, (h, w)).astype(np.float32)
    rgb = base * (shade * texture)[..., None]
    crease = int(rng.integers(0, w if side in ("left", "right") else h))  # the fold, along the box's side
    thick = max(1, min(h, w) // 60)
    if side in ("left", "right"):
        rgb[:, crease : crease + thick] *= rng.uniform(0.6, 0.85)
    else:
        rgb[crease : crease + thick] *= rng.uniform(0.6, 0.85)
    stains = np.clip((_smooth_noise(rng, h, w, rng.uniform(0.1, 0.4) * max(h, w)) - rng.uniform(0.6, 0.8)) * 8, 0, 1)
    rgb *= 1 - stains[..., None] * rng.uniform(0.15, 0.35)
    region = image[ya:yb, xa:xb]
    free = mask[ya:yb, xa:xb] == 0
    region[free] = np.clip(rgb, 0, 255).astype(np.uint8)[free]


def _sleeve(rng: Rng, image: np.ndarray, mask: np.ndarray) -> None:
    """A clear plastic sleeve over the core: a faint milky film and bright streaks along the
    columns, over rock and box alike; the rock under it keeps its class."""
    height, width = mask.shape
    along_rows = columns_run_down(mask)
    rgb = image.astype(np.float32)
    rgb += (235 - rgb) * rng.uniform(0.05, 0.18)
    length = width if along_rows else height
    streaks = np.zeros(length, np.float32)
    for _ in range(int(rng.integers(1, 6))):
        centre, half = rng.uniform(0, length), rng.uniform(1, max(2.0, length / 60))
        position = np.arange(length, dtype=np.float32)
        streaks = np.maximum(streaks, np.clip(1 - np.abs(position - centre) / half, 0, 1) * rng.uniform(0.2, 0.6))
    shine = streaks[None, :, None] if along_rows else streaks[:, None, None]
    rgb += (250 - rgb) * shine
    image[:] = np.clip(rgb, 0, 255).astype(np.uint8)


def _spot(rng: Rng, height: int, width: int, w: int, h: int) -> tuple[int, int]:
    """A top-left corner for a w × h thing, mostly near the photo's edges (where labels lie)."""
    x = int(rng.integers(0, max(1, width - w)))
    y = int(rng.choice([rng.integers(0, max(1, height // 6)), rng.integers(max(0, height - h - height // 6), max(1, height - h))]))
    return x, y


def _colour_checker(rng: Rng, draw: ImageDraw.ImageDraw, height: int, width: int) -> tuple[int, int, int, int]:
    """A 6 × 4 colour chart on a black card."""
    patch = max(3, int(min(height, width) * rng.uniform(0.02, 0.05)))
    gap = max(1, patch // 6)
    w, h = 6 * (patch + gap) + gap, 4 * (patch + gap) + gap
    x, y = _spot(rng, height, width, w, h)
    draw.rectangle([x, y, x + w, y + h], fill=(20, 20, 22))
    for index, colour in enumerate(CHECKER):
        row, column = divmod(index, 6)
        px, py = x + gap + column * (patch + gap), y + gap + row * (patch + gap)
        draw.rectangle([px, py, px + patch - 1, py + patch - 1], fill=colour)
    return x, y, x + w + 1, y + h + 1


def _header(rng: Rng, draw: ImageDraw.ImageDraw, height: int, width: int) -> tuple[int, int, int, int]:
    """A printed or hand-written header strip: well name, box number and depths."""
    size = max(8, int(min(height, width) * rng.uniform(0.025, 0.06)))
    font = ImageFont.load_default(size=size)
    well = f"{rng.choice(['WELL', 'BH', 'DDH', 'Well'])} {rng.choice(list('ABCKNSW'))}-{int(rng.integers(1, 99))}"
    top = float(rng.uniform(10, 4000))
    text = f"{well}   BOX {int(rng.integers(1, 400))}   {top:.2f} - {top + rng.uniform(1, 6):.2f} m"
    left, upper, right, lower = draw.textbbox((0, 0), text, font=font)
    w, h = int(min(width, right - left + 2 * size)), int(lower - upper + size)
    x, y = _spot(rng, height, width, w, h)
    paper = tuple(int(v) for v in rng.choice([[245, 245, 240], [250, 240, 170], [230, 230, 230]]))
    draw.rectangle([x, y, x + w, y + h], fill=paper)
    ink = tuple(int(v) for v in rng.choice([[15, 15, 20], [20, 30, 120], [140, 20, 20]]))
    draw.text((x + size - int(left), y + size // 2 - int(upper)), text, fill=ink, font=font)
    return x, y, x + w + 1, y + h + 1


def _scale_bar(rng: Rng, draw: ImageDraw.ImageDraw, height: int, width: int) -> tuple[int, int, int, int]:
    """A black-and-white scale bar (or ruler) of ten segments, across or along the photo."""
    segment = max(3, int(max(height, width) * rng.uniform(0.01, 0.03)))
    thick = max(3, segment // 2)
    vertical = bool(rng.random() < 0.3)
    w, h = (thick, 10 * segment) if vertical else (10 * segment, thick)
    w, h = min(w, width), min(h, height)
    x, y = _spot(rng, height, width, w, h)
    for index in range(10):
        fill = (15, 15, 15) if index % 2 == 0 else (240, 240, 240)
        if vertical:
            draw.rectangle([x, y + index * segment, x + thick - 1, y + (index + 1) * segment - 1], fill=fill)
        else:
            draw.rectangle([x + index * segment, y, x + (index + 1) * segment - 1, y + thick - 1], fill=fill)
    return x, y, x + w, y + h
