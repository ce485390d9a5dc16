"""Labelled image folders and training crops.

A dataset directory holds `images/<id>.<jpg|png|tif|webp|bmp>` and `masks/<id>.png`, as
`../shared/data/real_cores` does; an optional `manifest.json` may flag photos whose labels are
`partial` (unlabelled rock is marked background there). On those, background is ignored in the loss
near the labelled rock, where the unlabelled pieces lie, and kept far from it (`ignore_background`).

Photos are decoded as the service decodes uploads (`pipelines.decode.read_image_file`: EXIF
orientation applied, 16-bit and alpha handled), so a model learns and is judged on the pixels it
will be sent. Masks are read as labelling tools write them (`read_mask`): class ids in a grey or
palette PNG, or the class table's colours in an RGB PNG; 255 (white in a colour mask) marks pixels
not to judge. A mask that fits the photo only as stored, before its EXIF orientation, is turned
with it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.classes import ClassTable, default_class_table
from pipelines.decode import exif_orientation, list_images, read_image_file
from pipelines.errors import InputError, LithosegError
from pipelines.exposure import scale_brightness
from pipelines.resolution import resample_image, resample_labels, scaled_size, working_size
from training.metrics import IGNORE_ID
from training.synthetic import generate_sample

log = logging.getLogger(__name__)

# Pillow's transpose for the EXIF orientations that swap width and height: what
# ImageOps.exif_transpose does to such a photo
_ORIENTATION_TRANSPOSE = {
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


IGNORE_COLOUR = (255, 255, 255)  # in a mask drawn in the class colours: pixels not to judge


class DatasetError(LithosegError, ValueError):
    """A labelled folder, photo or mask that cannot be used as it is; the message says what to fix."""


@dataclass(frozen=True)
class LabelledImage:
    """A photo with its class-index mask and, for partially labelled photos, which pixels are labelled."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) uint8; IGNORE_ID where the label is not trusted


def list_pairs(directory: str | Path) -> list[tuple[str, Path, Path]]:
    """(id, photo, mask) for each photo under `images/` with a mask of its name under `masks/`.
    Photos without a mask, and masks without a photo, are named in a warning and left out."""
    root = Path(directory)
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise DatasetError(f"{root} is not a labelled folder: it needs images/ (photos) and masks/ (PNG masks of the same names).")
    pairs, unlabelled = [], []
    for image_path in list_images(root / "images"):
        mask_path = root / "masks" / f"{image_path.stem}.png"
        if mask_path.is_file():
            pairs.append((image_path.stem, image_path, mask_path))
        else:
            unlabelled.append(image_path.name)
    orphans = sorted({p.stem for p in (root / "masks").glob("*.png")} - {name for name, _, _ in pairs})
    if unlabelled:
        log.warning("%s: %d photo(s) without a mask in masks/ left out: %s", root, len(unlabelled), ", ".join(unlabelled[:10]))
    if orphans:
        log.warning("%s: %d mask(s) without a photo in images/ left out: %s", root, len(orphans), ", ".join(orphans[:10]))
    if not pairs:
        raise DatasetError(
            f"No photo/mask pairs under {root}: expected images/<id>.jpg (or .png, .tif, .webp, .bmp, .heic, .avif) and masks/<id>.png."
        )
    return pairs


def read_mask(path: str | Path, classes: ClassTable | None = None) -> np.ndarray:
    """A mask PNG as (H, W) uint8 class ids. Grey, palette (the index is the class id) and 16-bit
    masks hold ids; an RGB mask holds either ids in all three channels or the class table's
    colours (`classes.json`, white for pixels not to judge). Any other value is refused with the
    values it found."""
    classes = classes or default_class_table()
    with Image.open(path) as image:
        if image.mode in ("RGB", "RGBA"):
            ids = _colours_to_ids(np.asarray(image.convert("RGB")), classes, path)
        elif image.mode in ("LA", "PA"):
            ids = np.asarray(image.getchannel(0))
        else:
            ids = np.asarray(image)
    ids = np.asarray(ids, dtype=np.int64)
    bad = (ids < 0) | ((ids >= len(classes)) & (ids != IGNORE_ID))
    if bad.any():
        values, counts = np.unique(ids[bad], return_counts=True)
        found = ", ".join(f"{v} ({c:,} px)" for v, c in zip(values[:5].tolist(), counts[:5].tolist(), strict=True))
        raise DatasetError(
            f"{path} holds values that are not class ids: {found}; ids run from 0 to {len(classes) - 1}, and 255 marks pixels not to judge."
        )
    return ids.astype(np.uint8)


def _colours_to_ids(rgb: np.ndarray, classes: ClassTable, path: str | Path) -> np.ndarray:
    grey = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    if grey.all():
        ids = rgb[..., 0]
        if ((ids < len(classes)) | (ids == IGNORE_ID)).all():
            return ids  # ids saved as an RGB picture
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    palette = np.vstack([classes.palette, [IGNORE_COLOUR]]).astype(np.int64)
    known = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    ids = np.array([c.id for c in classes.classes] + [IGNORE_ID], np.int64)
    order = np.argsort(known)
    at = np.clip(np.searchsorted(known[order], codes), 0, len(known) - 1)
    match = known[order][at] == codes
    if not match.all():
        values, counts = np.unique(codes[~match], return_counts=True)
        found = ", ".join(
            f"({v >> 16}, {v >> 8 & 255}, {v & 255}) {c:,} px" for v, c in zip(values[:5].tolist(), counts[:5].tolist(), strict=True)
        )
        raise DatasetError(
            f"{path} is an RGB mask with colours that are not in the class table: {found}; "
            "save masks as class ids (a grey or palette PNG) or in the colours of classes.json."
        )
    return ids[order][at]


def partially_labelled(directory: str | Path) -> set[str]:
    """The photos of a folder whose masks label only part of the core (from its manifest)."""
    manifest = Path(directory) / "manifest.json"
    if not manifest.is_file():
        return set()
    photos = json.loads(manifest.read_text()).get("photos", [])
    return {p["id"] for p in photos if str(p.get("label_quality", "")).startswith("partial")}


PARTIAL_LABEL_MARGIN = 0.1  # of the shorter side; see ignore_background


def dilate(binary: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2·radius + 1)² square, as two separable running maxima."""
    if radius <= 0:
        return binary.copy()
    out = binary
    for axis in (0, 1):
        widths = [(0, 0), (0, 0)]
        widths[axis] = (radius, radius)
        out = np.lib.stride_tricks.sliding_window_view(np.pad(out, widths), 2 * radius + 1, axis=axis).max(axis=-1)
    return out


JUDGED_EDGE = 8  # px of background still judged around a partially labelled photo's labelled rock
JUDGING = f"every pixel, except background within the labels' box of partially labelled photos ({JUDGED_EDGE} px edge kept)"
EVERY_PIXEL = "every pixel"  # the other rule: `evaluate --every-pixel`, and how folds validated before `judging` was recorded


def judged_labels(item: LabelledImage, partial: bool) -> LabelledImage:
    """A held-out photo's labels as a validation judges them: every pixel, except on a partially
    labelled photo the background in the box around its labels (`ignore_background`, keeping
    JUDGED_EDGE px around labelled rock), where rock the labels leave out would be counted as
    false rock. One rule whatever a recipe's training options, so that folds compare."""
    return ignore_background(item, edge=JUDGED_EDGE) if partial else item


def ignore_background(item: LabelledImage, margin: float = PARTIAL_LABEL_MARGIN, edge: int = 0, everywhere: bool = False) -> LabelledImage:
    """For a partially labelled photo: its background marked IGNORE_ID inside the bounding box of
    its labelled pixels grown by `margin` × the shorter side, and left as background outside; with
    `edge` > 0, background within `edge` pixels of labelled rock is kept too.

    In such photos the unlabelled rock lies among the labelled pieces, in the same box, while the
    table or paper around the box is background for certain. Ignoring every background pixel (as
    version 5's training did) never taught the network that the paper beside a box, with its
    footprints and grit, is not rock; ignoring only the box region does. The outline of a labelled
    piece is as trustworthy as its inside, so a thin band around it (the floor showing between
    pieces of rubble, a piece's edge) can stay background as well. `everywhere`: every background
    pixel ignored, box or not (how the shipped model's stages 1-5 trained)."""
    mask = item.mask.copy()
    if everywhere:
        mask[mask == 0] = IGNORE_ID
        return LabelledImage(item.name, item.image, mask)
    rows, cols = np.nonzero(mask != 0)
    grow = int(round(margin * min(mask.shape)))
    box = (
        (slice(max(0, rows.min() - grow), rows.max() + grow + 1), slice(max(0, cols.min() - grow), cols.max() + grow + 1))
        if rows.size
        else ...
    )
    untrusted = np.zeros(mask.shape, bool)
    untrusted[box] = True
    untrusted &= mask == 0
    if edge > 0:
        untrusted &= ~dilate((mask != 0) & (mask != IGNORE_ID), edge)
    mask[untrusted] = IGNORE_ID
    return LabelledImage(item.name, item.image, mask)


def box_mean(values: np.ndarray, radius: int) -> np.ndarray:
    """Mean of `values` over the (2·radius + 1)² square around each pixel, by summed-area table;
    at the border over the part of the square inside the image."""
    padded = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    padded[1:, 1:] = values.astype(np.float64).cumsum(0).cumsum(1)
    h, w = values.shape
    y0, y1 = np.clip(np.arange(h) - radius, 0, h), np.clip(np.arange(h) + radius + 1, 0, h)
    x0, x1 = np.clip(np.arange(w) - radius, 0, w), np.clip(np.arange(w) + radius + 1, 0, w)
    total = padded[y1][:, x1] - padded[y0][:, x1] - padded[y1][:, x0] + padded[y0][:, x0]
    return total / np.outer(y1 - y0, x1 - x0)


def ignore_fragmented(item: LabelledImage, density: float, radius: int = 7) -> LabelledImage:
    """`item` with its label marked IGNORE_ID where the rock/background outline is fragmented:
    where more than `density` of the pixels in the (2·radius + 1)² square around a pixel lie on a
    rock/background boundary. A clean outline through the square puts about 1/(2·radius + 1) of
    its pixels on the boundary (0.07 for radius 7); the semi-automatic labels of the handheld
    training photos break up into speckle along dark laminae and fractures (background specks
    inside rock), where they are not to be trusted either way."""
    valid = item.mask != IGNORE_ID
    rock = (item.mask != 0) & valid
    boundary = np.zeros(rock.shape, bool)
    boundary[1:] |= (rock[1:] != rock[:-1]) & valid[1:] & valid[:-1]
    boundary[:, 1:] |= (rock[:, 1:] != rock[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    mask = item.mask.copy()
    mask[box_mean(boundary, radius) > density] = IGNORE_ID
    return LabelledImage(item.name, item.image, mask)


def ignore_regions(item: LabelledImage, boxes: list[list[int]]) -> LabelledImage:
    """`item` with its label marked IGNORE_ID inside each pixel box (x0, y0, x1, y1), end-exclusive:
    regions whose label is known to be wrong (e.g. rock the source left unlabelled) are not judged."""
    mask = item.mask.copy()
    for x0, y0, x1, y1 in boxes:
        if not (0 <= x0 < x1 and 0 <= y0 < y1):
            raise ValueError(f"Region {[x0, y0, x1, y1]} of {item.name} is not a box (x0 < x1, y0 < y1, both from 0).")
        mask[y0:y1, x0:x1] = IGNORE_ID
    return LabelledImage(item.name, item.image, mask)


def expose_item(item: LabelledImage, factor: float) -> LabelledImage:
    """`item` as a camera exposing `factor` times as long would have taken it: pixel values
    multiplied by `factor`, clipped at 255. To measure how a checkpoint copes with dark photos."""
    if factor <= 0:
        raise ValueError(f"An exposure factor must be positive, not {factor}.")
    return LabelledImage(item.name, scale_brightness(item.image, factor), item.mask)


def rescale_item(item: LabelledImage, factor: float) -> LabelledImage:
    """`item` as a camera of `factor` times its resolution would have taken it: the photo
    resampled (Lanczos), the labels by nearest neighbour. To measure how a checkpoint copes with
    photos larger or smaller than those it was trained on."""
    if factor <= 0:
        raise ValueError(f"A rescale factor must be positive, not {factor}.")
    height, width = item.mask.shape
    return resize_item(item, scaled_size(height, width, factor))


def at_working_size(item: LabelledImage, max_short_side: int | None) -> LabelledImage:
    """`item` scaled down as the service scales down a photo of its size before segmenting it
    (`pipelines.resolution.working_size`), so that a network learns core at the size it will see."""
    height, width = item.mask.shape
    size = working_size(height, width, max_short_side)
    return item if size == item.mask.shape else resize_item(item, size)


def resize_item(item: LabelledImage, size: tuple[int, int]) -> LabelledImage:
    """The photo resampled to (height, width) `size` (Lanczos), its labels by nearest neighbour."""
    return LabelledImage(item.name, resample_image(item.image, size), resample_labels(item.mask, size))


def load_folder(directory: str | Path, names: set[str] | None = None) -> list[LabelledImage]:
    """A folder's labelled photos (images/ and masks/), optionally only `names`."""
    items = []
    for name, image_path, mask_path in list_pairs(directory):
        if names is not None and name not in names:
            continue
        try:
            image = read_image_file(image_path)
        except InputError as exc:
            raise DatasetError(str(exc)) from exc
        items.append(LabelledImage(name, image, _aligned_mask(read_mask(mask_path), image, image_path, mask_path)))
    missing = sorted((names or set()) - {item.name for item in items})
    if missing:
        raise DatasetError(f"{directory} has no labelled photo with the id {', '.join(missing)}.")
    return items


def _aligned_mask(mask: np.ndarray, image: np.ndarray, image_path: Path, mask_path: Path) -> np.ndarray:
    """The mask in the photo's display orientation. A mask drawn on the photo as stored (by a tool
    that ignores EXIF) fits it only before the turn: it is turned with the photo."""
    if mask.shape == image.shape[:2]:
        return mask
    orientation = exif_orientation(image_path)
    if orientation in _ORIENTATION_TRANSPOSE and mask.shape == image.shape[1::-1]:
        return np.asarray(Image.fromarray(mask).transpose(_ORIENTATION_TRANSPOSE[orientation]))
    height, width = image.shape[:2]
    raise DatasetError(
        f"{mask_path} is {mask.shape[1]} x {mask.shape[0]} pixels but its photo is "
        f"{width} x {height} (as displayed); a mask must cover its photo pixel for pixel."
    )


def random_crop(
    rng: np.random.Generator, item: LabelledImage, size: int, scale_range: tuple[float, float] = (0.5, 1.5)
) -> tuple[np.ndarray, np.ndarray]:
    """A `size`² crop at a random scale, flip and quarter turn; pads with ignore where too small."""
    image, mask = item.image, item.mask
    scale = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    h, w = mask.shape
    new_h, new_w = max(8, int(h * scale)), max(8, int(w * scale))
    if (new_h, new_w) != (h, w):
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
        mask = np.asarray(Image.fromarray(mask).resize((new_w, new_h), Image.Resampling.NEAREST))
    pad_h, pad_w = max(0, size - new_h), max(0, size - new_w)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect" if pad_h < new_h and pad_w < new_w else "edge")
        mask = np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_ID)
    y = int(rng.integers(0, mask.shape[0] - size + 1))
    x = int(rng.integers(0, mask.shape[1] - size + 1))
    image, mask = image[y : y + size, x : x + size], mask[y : y + size, x : x + size]
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    turns = int(rng.integers(0, 4))
    image, mask = np.rot90(image, turns), np.rot90(mask, turns)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def color_jitter(rng: np.random.Generator, image: np.ndarray, hue: float = 0.0, grey: float = 0.0) -> np.ndarray:
    """Brightness, per-channel gain and contrast; with `hue` > 0 also a hue shift of up to ±`hue`
    of the colour wheel and a saturation gain of 1 ± 2·`hue`; with `grey` > 0, that share of the
    crops turned to grey levels (archive photos are often black and white). No random draws for
    either at 0, so recipes without them crop and jitter exactly as before."""
    rgb: np.ndarray = image.astype(np.float32)
    rgb = rgb * rng.uniform(0.75, 1.25) * rng.normal(1, 0.05, 3)[None, None, :]
    mean = rgb.mean()
    rgb = (rgb - mean) * rng.uniform(0.8, 1.2) + mean
    out = np.clip(rgb, 0, 255).astype(np.uint8)
    if hue > 0:
        hsv = np.asarray(Image.fromarray(out).convert("HSV")).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + int(round(rng.uniform(-hue, hue) * 256))) % 256
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1 - 2 * hue, 1 + 2 * hue), 0, 255)
        out = np.array(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"))  # writable, for torch.from_numpy
    if grey > 0 and rng.random() < grey:
        out = np.array(Image.fromarray(out).convert("L").convert("RGB"))
    return out


PASTE_CLOSING = 7  # px: gaps narrower than about twice this between a source's labelled pieces go with them


def paste_rock(target: tuple[np.ndarray, np.ndarray], source: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Copy-paste augmentation (Ghiasi et al., "Simple Copy-Paste", CVPR 2021) for one crop: the
    labelled rock of `source` (image, mask), with the cracks and narrow gaps between its pieces (a
    closing of its rock by PASTE_CLOSING px), pasted onto `target` at the same place, the source's
    labels with it. Rock from one photo then lies on another photo's floor, box or paper, so the
    outline has to be told from the rock's own look, not from which scene it is in. Crops of the
    same size; returns new arrays."""
    image, mask = target
    source_image, source_mask = source
    if image.shape != source_image.shape or mask.shape != source_mask.shape:
        raise ValueError(f"Crops of different sizes: {mask.shape} and {source_mask.shape}.")
    rock = (source_mask != 0) & (source_mask != IGNORE_ID)
    margin = 2 * PASTE_CLOSING + 1  # beyond the crop is background: the closing does not fill the way to its border
    padded = np.pad(rock, margin)
    region = ~dilate(~dilate(padded, PASTE_CLOSING), PASTE_CLOSING)[margin:-margin, margin:-margin] | rock
    pasted_image, pasted_mask = image.copy(), mask.copy()
    pasted_image[region] = source_image[region]
    pasted_mask[region] = source_mask[region]
    return pasted_image, pasted_mask


def synthetic_item(
    seed: int, floor_fraction: float = 0.0, scene_fraction: float = 0.0, packing_fraction: float = 0.0, cardboard_fraction: float = 0.0
) -> LabelledImage:
    """One synthetic core photo with its mask, as a LabelledImage (the fractions: see generate_sample)."""
    sample = generate_sample(
        seed,
        floor_fraction=floor_fraction,
        scene_fraction=scene_fraction,
        packing_fraction=packing_fraction,
        cardboard_fraction=cardboard_fraction,
    )
    return LabelledImage(f"synthetic{seed}", sample.image, sample.mask)
