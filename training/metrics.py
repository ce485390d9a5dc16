"""Segmentation metrics from a confusion matrix: per-class IoU, mIoU, pixel accuracy, rock IoU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.classes import BACKGROUND_ID, ClassTable

IGNORE_ID = 255


@dataclass
class ConfusionMatrix:
    """Counts of (true, predicted) class pairs, and the IoU figures drawn from them."""

    num_classes: int

    def __post_init__(self) -> None:
        self.counts = np.zeros((self.num_classes, self.num_classes), np.int64)  # [truth, predicted]

    def update(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        if truth.shape != predicted.shape:
            raise ValueError(f"Mask shapes differ: {truth.shape} vs {predicted.shape}.")
        valid = truth != IGNORE_ID
        t = truth[valid].astype(np.int64)
        p = predicted[valid].astype(np.int64)
        self.counts += np.bincount(t * self.num_classes + p, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for a class that is neither in the truth nor predicted."""
        tp = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(0) + self.counts.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def present(self) -> np.ndarray:
        return self.counts.sum(1) > 0

    def predicted_as(self, class_table: ClassTable, at_least: float = 0.01) -> dict[str, dict[str, float]]:
        """For each rock class in the truth, the shares of its pixels given each class (those of
        `at_least` or more, largest first): where a class's pixels go when they are not found."""
        shares = {}
        for c in class_table.classes:
            row, total = self.counts[c.id], self.counts[c.id].sum()
            if c.id == BACKGROUND_ID or not total:
                continue
            order = np.argsort(-row, kind="stable")  # ties in class-id order
            shares[c.name] = {class_table.classes[p].name: float(row[p] / total) for p in order if row[p] / total >= at_least}
        return shares

    def report(self, class_table: ClassTable) -> dict[str, Any]:
        iou = self.iou()
        present = self.present()
        rock = np.array([c.id != BACKGROUND_ID for c in class_table.classes])
        rock_present = rock & present
        total = self.counts.sum()
        bg = BACKGROUND_ID
        rock_tp = self.counts[np.ix_(rock, rock)].sum()
        rock_union = self.counts[rock, :].sum() + self.counts[:, rock].sum() - rock_tp
        return {
            "pixels": int(total),
            "pixel_accuracy": float(np.diag(self.counts).sum() / total) if total else float("nan"),
            "miou_present": float(np.nanmean(iou[present])) if present.any() else float("nan"),
            "miou_rock_present": float(np.nanmean(iou[rock_present])) if rock_present.any() else float("nan"),
            "rock_vs_background_iou": float(rock_tp / rock_union) if rock_union else float("nan"),
            "background_iou": float(iou[bg]),
            # where rock-vs-background errs: background called rock, rock called background, and
            # rock given the wrong rock class (which rock-vs-background IoU does not count)
            "false_rock_pixels": int(self.counts[bg, rock].sum()),
            "missed_rock_pixels": int(self.counts[rock, bg].sum()),
            "wrong_rock_class_pixels": int(rock_tp - np.diag(self.counts)[rock].sum()),
            "per_class": {
                c.name: {"iou": None if np.isnan(iou[c.id]) else float(iou[c.id]), "pixels": int(self.counts[c.id].sum())}
                for c in class_table.classes
            },
            "confusion_matrix": self.counts.tolist(),
        }
