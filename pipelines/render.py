"""What a finished job returns: the overlay, the class-index mask PNG and the summary."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pipelines.classes import BACKGROUND_ID, ClassTable
from pipelines.errors import InvalidParameterError
from pipelines.lithology_log import lithology_log
from pipelines.png import PngWriter, encode_png
from pipelines.strips import strip_rows


def check_mask_weight(value: float) -> float:
    """`value` if it is an overlay opacity in [0, 1], else InvalidParameterError."""
    if not (0.0 <= value <= 1.0):  # also false for NaN
        raise InvalidParameterError(f"The mask_weight must be a number between 0 and 1; got {value}.")
    return float(value)


def blend(image: np.ndarray, class_ids: np.ndarray, palette: np.ndarray, mask_weight: float) -> np.ndarray:
    """One strip of the overlay: (1 - w) · photo + w · colour on rock pixels; background as it is.

    In 16-bit integers with w in 256ths (within one level of the exact blend): half the memory of
    float32 and no per-pixel indexing."""
    alpha = round(mask_weight * 256)
    rock = class_ids != BACKGROUND_ID
    if alpha == 0 or not rock.any():
        return image.copy()
    mixed = image.astype(np.uint16) * np.uint16(256 - alpha)
    mixed += palette[class_ids].astype(np.uint16) * np.uint16(alpha)  # at most 255 · 256 in all
    mixed += np.uint16(128)
    mixed >>= 8
    return np.where(rock[..., None], mixed.astype(np.uint8), image)


def overlay_strips(image: np.ndarray, class_ids: np.ndarray, palette: np.ndarray, mask_weight: float) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, blended strip) from top to bottom: the overlay without holding all of it."""
    check_mask_weight(mask_weight)
    for rows in strip_rows(*image.shape[:2]):
        yield rows, blend(image[rows], class_ids[rows], palette, mask_weight)


def overlay(image: np.ndarray, class_ids: np.ndarray, palette: np.ndarray, mask_weight: float) -> np.ndarray:
    """The whole overlay as an array."""
    out = np.empty_like(image)
    for rows, strip in overlay_strips(image, class_ids, palette, mask_weight):
        out[rows] = strip
    return out


def overlay_png(image: np.ndarray, class_ids: np.ndarray, palette: np.ndarray, mask_weight: float) -> bytes:
    """The overlay's PNG, blended and encoded strip by strip: no full-size overlay is ever held."""
    writer = PngWriter(image.shape[0], image.shape[1], 3)
    for _, strip in overlay_strips(image, class_ids, palette, mask_weight):
        writer.write(strip)
    return writer.finish()


def class_counts(class_ids: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels per class id, counted in strips: np.bincount casts its input to int64, 8 bytes a pixel."""
    counts = np.zeros(num_classes, np.int64)
    for rows in strip_rows(*class_ids.shape[:2]):
        counts += np.bincount(class_ids[rows].ravel(), minlength=num_classes)[:num_classes]
    return counts


def summarize(class_ids: np.ndarray, class_table: ClassTable) -> dict[str, Any]:
    """Per-class coverage, the classes detected (rock classes with at least one pixel), the
    lithology log along the long axis."""
    counts = class_counts(class_ids, len(class_table))
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


def render_outputs(
    image: np.ndarray, class_ids: np.ndarray, confidence: np.ndarray, mask_weight: float, class_table: ClassTable
) -> dict[str, Any]:
    """Everything a finished job stores: overlay PNG, class-index mask PNG, confidence heatmap PNG
    and the summary. The three PNGs are encoded on three threads (zlib releases the GIL): on a
    large scan encoding costs more than anything else here."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        mask = pool.submit(encode_png, class_ids)
        heatmap = pool.submit(encode_png, confidence)
        overlay_bytes = overlay_png(image, class_ids, class_table.palette, mask_weight)
        summary = {**summarize(class_ids, class_table), "mean_confidence": mean_confidence(confidence)}
        return {"overlay_png": overlay_bytes, "mask_png": mask.result(), "heatmap_png": heatmap.result(), "summary": summary}


def mean_confidence(confidence: np.ndarray) -> float:
    """The mean of a uint8 confidence map (255 = 1), as a fraction, summed in strips."""
    total = 0
    for rows in strip_rows(*confidence.shape[:2]):
        total += int(confidence[rows].sum(dtype=np.int64))
    return round(total / (255.0 * confidence.size), 4) if confidence.size else 0.0


def apply_confidence(class_ids: np.ndarray, confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Class ids with pixels whose confidence (max class probability, 0–1) is below `threshold`
    set to background (0): "unclassified" in the Roboflow-style mask."""
    if threshold <= 0:
        return class_ids
    return np.where(confidence >= np.uint8(min(255, round(threshold * 255))), class_ids, np.uint8(BACKGROUND_ID))
