"""The lithology log: which rock occurs where along the core axis.

For a slabbed-core scan or a single core column the core axis is the image's long side. Each line
across the axis (a row of a tall image, a column of a wide one) is given the rock class that
covers most of its rock pixels, provided rock covers at least `min_rock` of the line; lines with
less rock are gaps (tray, spacers, breaks). Runs of equal lines become intervals; runs shorter
than `min_fraction` of the length are merged into their longer neighbour, so a stray line does
not split an interval. For a box photo with several columns the log runs along the long side
across all columns at once: read it as an overview, not as a depth log.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.classes import BACKGROUND_ID, ClassTable

GAP = -1


def line_classes(class_ids: np.ndarray, num_classes: int, min_rock: float = 0.2) -> tuple[np.ndarray, int]:
    """(per-line class id or GAP, axis): axis 0 when lines are rows (image taller than wide)."""
    axis = 0 if class_ids.shape[0] >= class_ids.shape[1] else 1
    across = 1 - axis
    breadth = class_ids.shape[across]
    counts = np.stack([(class_ids == c).sum(axis=across) for c in range(num_classes)], axis=1)  # (L, C)
    counts[:, BACKGROUND_ID] = 0
    rock = counts.sum(axis=1)
    best = counts.argmax(axis=1)
    return np.where(rock >= min_rock * breadth, best, GAP), axis


def runs(labels: np.ndarray) -> list[list[int]]:
    """[label, start, end) runs of equal values."""
    if labels.size == 0:
        return []
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [labels.size]])
    return [[int(labels[s]), int(s), int(e)] for s, e in zip(starts, ends, strict=True)]


def merge_short(segments: list[list[int]], min_length: int) -> list[list[int]]:
    """Merge runs shorter than `min_length` into their longer neighbour, shortest first."""
    segments = [s[:] for s in segments]
    while len(segments) > 1:
        lengths = [e - s for _, s, e in segments]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_length:
            break
        left = segments[i - 1] if i > 0 else None
        right = segments[i + 1] if i + 1 < len(segments) else None
        into = left if right is None or (left is not None and left[2] - left[1] >= right[2] - right[1]) else right
        assert into is not None
        into[1], into[2] = min(into[1], segments[i][1]), max(into[2], segments[i][2])
        del segments[i]
        merged: list[list[int]] = []  # neighbours that now carry the same label join up
        for seg in segments:
            if merged and merged[-1][0] == seg[0] and merged[-1][2] == seg[1]:
                merged[-1][2] = seg[2]
            else:
                merged.append(seg)
        segments = merged
    return segments


def lithology_log(class_ids: np.ndarray, class_table: ClassTable, min_fraction: float = 0.005, max_intervals: int = 500) -> dict[str, Any]:
    """Where each rock class occurs along the image's long side: runs of the majority class per line, gaps where there is little rock."""
    labels, axis = line_classes(class_ids, len(class_table))
    length = int(labels.size)
    min_length = max(1, round(min_fraction * length))
    segments = merge_short(runs(labels), min_length)
    while len(segments) > max_intervals:  # a very busy log: coarsen until it fits
        min_length *= 2
        segments = merge_short(segments, min_length)
    names = {c.id: c.name for c in class_table.classes}
    intervals = [
        {
            "class": names[label],
            "class_id": label,
            "start_px": start,
            "end_px": end,
            "start_fraction": round(start / length, 5),
            "end_fraction": round(end / length, 5),
        }
        for label, start, end in segments
        if label != GAP
    ]
    return {"axis": "rows" if axis == 0 else "columns", "length_px": length, "intervals": intervals}
