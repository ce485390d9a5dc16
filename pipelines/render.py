"""What a finished job returns: the overlay, the class-index mask PNG and the summary."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from pipelines.classes import BACKGROUND_ID, ClassTable
from pipelines.errors import InvalidParameterError
from pipelines.lithology_log import lithology_log

# Compression level 1: large masks and overlays compress nearly as well as at 6 and several
# times faster, and encoding is on every job's critical path.
PNG_COMPRESS_LEVEL = 1
_STRIP_PIXELS = 1 << 22


def check_mask_weight(value: float) -> float:
    if not (0.0 <= value <= 1.0):  # also false for NaN
        raise InvalidParameterError(f"The mask_weight must be a number between 0 and 1; got {value}.")
    return float(value)


def overlay(image: np.ndarray, class_ids: np.ndarray, palette: np.ndarray, mask_weight: float) -> np.ndarray:
    """Blend class colours onto rock pixels: (1 - w) · photo + w · colour. Background stays as it is.

    Works in strips of rows so that the float temporaries stay small on a 100-megapixel image."""
    check_mask_weight(mask_weight)
    out = image.copy()
    if mask_weight == 0.0:
        return out
    rows = max(1, _STRIP_PIXELS // max(1, image.shape[1]))
    for y in range(0, image.shape[0], rows):
        ids = class_ids[y : y + rows]
        rock = ids != BACKGROUND_ID
        if not rock.any():
            continue
        part = out[y : y + rows]
        colours = palette[ids[rock]].astype(np.float32)
        photo = part[rock].astype(np.float32)
        part[rock] = np.clip((1.0 - mask_weight) * photo + mask_weight * colours + 0.5, 0, 255).astype(np.uint8)
    return out


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an (H, W) uint8 (mode L) or (H, W, 3) uint8 (RGB) array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def summarize(class_ids: np.ndarray, class_table: ClassTable) -> dict[str, Any]:
    """Per-class coverage, the classes detected (rock classes with at least one pixel), the
    lithology log along the long axis."""
    counts = np.bincount(class_ids.ravel(), minlength=len(class_table))
    total = int(class_ids.size)
    rock_total = int(total - counts[BACKGROUND_ID])
    detected = {c.name: list(c.color) for c in class_table.rock_classes if counts[c.id] > 0}
    coverage = {c.name: float(counts[c.id] / total) for c in class_table.classes if counts[c.id] > 0}
    return {
        "detected_classes": detected,
        "coverage": coverage,
        "rock_fraction": rock_total / total if total else 0.0,
        "image": {"height": int(class_ids.shape[0]), "width": int(class_ids.shape[1])},
        "class_map": class_table.class_map(),
        "lithology_log": lithology_log(class_ids, class_table),
    }


def render_outputs(image: np.ndarray, class_ids: np.ndarray, confidence: np.ndarray, mask_weight: float, class_table: ClassTable) -> dict[str, Any]:
    """Everything a finished job stores: overlay PNG, class-index mask PNG, confidence heatmap PNG
    and the summary. The three PNGs are encoded on three threads (zlib releases the GIL): on a
    large scan encoding costs more than anything else here."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        mask = pool.submit(encode_png, class_ids)
        heatmap = pool.submit(encode_png, confidence)
        overlay_png = encode_png(overlay(image, class_ids, class_table.palette, mask_weight))
        summary = summarize(class_ids, class_table)
        return {"overlay_png": overlay_png, "mask_png": mask.result(), "heatmap_png": heatmap.result(), "summary": summary}


def apply_confidence(class_ids: np.ndarray, confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Class ids with pixels whose confidence (max class probability, 0–1) is below `threshold`
    set to background (0): "unclassified" in the Roboflow-style mask."""
    if threshold <= 0:
        return class_ids
    return np.where(confidence >= np.uint8(min(255, round(threshold * 255))), class_ids, np.uint8(BACKGROUND_ID))
