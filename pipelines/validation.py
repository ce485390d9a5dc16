"""Which classes a checkpoint was validated on with real photos, and what a result says about it.

Only three of the eleven classes occur in the labelled real photos (sandstone, limestone,
interlayered sandstones and mudstones); the other eight were learned from synthetic cores alone.
A checkpoint's real held-out metrics (`config.json` → `metrics.real_holdout.per_class`) name the
classes that had pixels there and their IoU; every result carries, for each class it detected,
whether that class is among them, so a user can tell a validated answer from an unvalidated one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

REAL_METRICS = "real_holdout"


def validated_classes(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Class name -> {"real_iou", "real_pixels"} for the classes present in the checkpoint's
    held-out real photos (none when it was never evaluated on real photos)."""
    per_class = (metrics.get(REAL_METRICS) or {}).get("per_class") or {}
    return {
        name: {"real_iou": round(float(figures["iou"]), 4), "real_pixels": int(figures["pixels"])}
        for name, figures in per_class.items()
        if name != "background" and int(figures.get("pixels", 0)) > 0
    }


def class_validation(detected: Iterable[str], validated: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each detected class: whether it was validated on real photos, with its IoU there
    (null for a class learned from synthetic cores only)."""
    return {name: {"validated_on_real_photos": name in validated, "real_iou": validated.get(name, {}).get("real_iou")} for name in detected}
