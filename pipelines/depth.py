"""The lithology log in depth: a box photo's segmentation registered to the depths it spans.

A job may say where its core comes from: `top_depth` and `bottom_depth` in `m` or `ft`, and for
a photo of a core box how many core columns it shows (`columns`) laid out as vertical columns read
left to right, each from top to bottom (`layout="columns"`, the usual core-box photograph), or as
horizontal rows read top to bottom, each from left to right (`layout="rows"`). When the count is
not given, the columns are found in the segmentation: bands of rock across the photo separated by
dividers or gaps. The box's depth range is shared equally among the columns, and within a column
the rock's extent along the column is mapped linearly onto the column's share.

Each column's log comes from `pipelines.lithology_log`: every line across the column takes the
class of most of its rock pixels, lines with little rock are gaps, short runs merge into their
neighbours. The intervals (`from`, `to` in depth units, in reading order) are contiguous within
each column and together span the box: a gap between pieces of core is an interval of its own
("no core").
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from pipelines.classes import ClassTable
from pipelines.errors import InvalidParameterError, finite_number
from pipelines.lithology_log import GAP, merge_short, runs

UNITS = ("m", "ft")
LAYOUTS = ("columns", "rows")
NO_CORE = "no core"
MIN_BAND_ROCK = 0.15  # a line across the photo with less rock than this is a divider or a gap
DIVIDER_DIP = 0.8  # or one with less than this share of the median rock cover of the core's lines
MIN_RUN_FRACTION = 0.01  # runs shorter than this share of a column merge into their neighbours
MAX_COLUMNS = 50


@dataclass(frozen=True)
class DepthSpec:
    """The depths a photo's core spans: top, bottom, unit, the columns and their reading order."""

    top: float
    bottom: float
    unit: Literal["m", "ft"] = "m"
    columns: int | None = None  # None: found in the segmentation
    layout: Literal["columns", "rows"] = "columns"

    @classmethod
    def parse(cls, fields: dict[str, str | None]) -> DepthSpec | None:
        """From a request's fields; None when it gives no depth. Refuses, with a sentence, a
        half-given range, a range the wrong way round, an unknown unit or layout, a bad count."""
        top, bottom = fields.get("top_depth"), fields.get("bottom_depth")
        others = [k for k in ("depth_unit", "columns", "layout") if fields.get(k)]
        if not top and not bottom:
            if others:
                raise InvalidParameterError(
                    f"The fields {', '.join(others)} only apply with top_depth and bottom_depth; give both depths too."
                )
            return None
        if not top or not bottom:
            raise InvalidParameterError("Give both top_depth and bottom_depth (the depths the photo's core spans), or neither.")
        upper, lower = finite_number("top_depth", top), finite_number("bottom_depth", bottom)
        if lower <= upper:
            raise InvalidParameterError(f"The bottom_depth ({lower}) must be greater than top_depth ({upper}): depth grows downwards.")
        unit = (fields.get("depth_unit") or "m").strip().lower()
        if unit not in UNITS:
            raise InvalidParameterError(f"The depth_unit must be m or ft; got {unit[:20]!r}.")
        layout = (fields.get("layout") or "columns").strip().lower()
        if layout not in LAYOUTS:
            raise InvalidParameterError(
                f"The layout must be columns (read left to right) or rows (read top to bottom); got {layout[:20]!r}."
            )
        count = None
        if fields.get("columns"):
            raw = str(fields["columns"]).strip()
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_COLUMNS:
                raise InvalidParameterError(f"The columns must be a whole number from 1 to {MAX_COLUMNS}; got {raw[:20]!r}.")
            count = int(raw)
        return cls(upper, lower, unit, count, layout)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DepthSpec:
        return cls(**raw)


def find_bands(rock: np.ndarray, expected: int | None) -> tuple[list[tuple[int, int]], int]:
    """The core columns across a (along, across) rock mask: ([start, end) of each band across,
    in reading order), and how many bands the rock itself shows. With `expected`, a count the
    rock does not show gives `expected` equal bands over the rock's extent (so an empty tray at
    the side of the box shifts the columns: give the count only when every tray holds core, or
    leave it out and let the rock show them)."""
    width = rock.shape[1]
    if width == 0:
        return [], 0
    profile = rock.mean(axis=0)
    window = max(1, width // 100)
    smooth = np.convolve(profile, np.ones(window) / window, mode="same")
    core = smooth >= MIN_BAND_ROCK
    # a divider is a dip well below a column's usual rock cover (the network may call part of a
    # white divider rock, so an absolute threshold alone would miss it)
    threshold = max(MIN_BAND_ROCK, DIVIDER_DIP * float(np.median(smooth[core]))) if core.any() else MIN_BAND_ROCK
    found = [
        (start, end)
        for label, start, end in runs((smooth >= threshold).astype(np.int64))
        if label == 1 and end - start >= max(2, width // 50)
    ]
    if expected is None:
        return (found or [(0, width)]), len(found)
    if len(found) == expected:
        return found, len(found)
    left, right = (found[0][0], found[-1][1]) if found else (0, width)
    edges = np.linspace(left, right, expected + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)], len(found)


def depth_log(class_ids: np.ndarray, confidence: np.ndarray | None, spec: DepthSpec, table: ClassTable) -> dict[str, Any]:
    """The depth log of a segmentation: the spec, the columns found, and the intervals."""
    along_rows = spec.layout == "columns"  # a column is read top to bottom: along the image's rows
    ids = class_ids if along_rows else class_ids.T
    conf = None if confidence is None else (confidence if along_rows else confidence.T)
    bands, found = find_bands(ids != 0, spec.columns)
    share = (spec.bottom - spec.top) / max(1, len(bands))
    intervals: list[dict[str, Any]] = []
    for index, (start, end) in enumerate(bands):
        column_top = spec.top + index * share
        intervals += _column(ids[:, start:end], None if conf is None else conf[:, start:end], index, column_top, share, table)
    return {**spec.to_dict(), "columns_found": found, "columns_used": len(bands), "intervals": intervals}


def _column(ids: np.ndarray, conf: np.ndarray | None, index: int, top: float, span: float, table: ClassTable) -> list[dict[str, Any]]:
    labels = line_labels(ids, len(table))
    rock_lines = np.flatnonzero(labels != GAP)
    if rock_lines.size == 0:
        return [_interval(index, top, top + span, None, None, 0.0, table)]
    first, last = int(rock_lines[0]), int(rock_lines[-1]) + 1
    labels = labels[first:last]
    length = last - first
    segments = merge_short(runs(labels), max(1, round(MIN_RUN_FRACTION * length)))
    out = []
    for label, start, end in segments:
        lines = ids[first + start : first + end]
        rock = lines != 0
        rock_fraction = float(rock.mean()) if lines.size else 0.0
        mean_conf = None
        if conf is not None and label != GAP:
            chosen = lines == label
            if chosen.any():
                mean_conf = round(float(conf[first + start : first + end][chosen].mean()) / 255.0, 4)
        out.append(_interval(index, top + span * start / length, top + span * end / length, label, mean_conf, rock_fraction, table))
    out[0]["from"], out[-1]["to"] = round(top, 4), round(top + span, 4)  # the column's whole share
    return out


def line_labels(ids: np.ndarray, num_classes: int, min_rock: float = 0.2) -> np.ndarray:
    """The class of most of each row's rock pixels, GAP where under `min_rock` of the row is rock
    (as `lithology_log.line_classes`, but always along the rows: a column is read downwards)."""
    rock = (ids != 0).sum(axis=1)
    counts = np.stack([(ids == c).sum(axis=1) for c in range(1, num_classes)], axis=1)
    best = counts.argmax(axis=1) + 1
    return np.where(rock >= min_rock * max(1, ids.shape[1]), best, GAP)


def _interval(
    column: int, start: float, end: float, label: int | None, conf: float | None, rock: float, table: ClassTable
) -> dict[str, Any]:
    named = label is not None and label != GAP
    return {
        "column": column + 1,
        "from": round(start, 4),
        "to": round(end, 4),
        "class": table.classes[label].name if named and label is not None else NO_CORE,
        "class_id": int(label) if named and label is not None else 0,
        "confidence": conf,
        "rock_fraction": round(rock, 4),
    }


def to_csv(log: dict[str, Any]) -> str:
    """from, to, unit, lithology, confidence: one line per interval, in reading order."""
    lines = ["from,to,unit,lithology,confidence"]
    for row in log["intervals"]:
        confidence = "" if row["confidence"] is None else f"{row['confidence']:.4f}"
        lines.append(f'{row["from"]},{row["to"]},{log["unit"]},"{row["class"]}",{confidence}')
    return "\n".join(lines) + "\n"


def to_las(log: dict[str, Any], table: ClassTable, well: str = "lithoseg") -> str:
    """A LAS 2.0 file with a discrete lithology curve (`LITH`, the class id; 0 where there is no
    core) sampled every hundredth of the range, and the class ids' names in its parameters."""
    import lasio

    top, bottom = float(log["top"]), float(log["bottom"])
    step = (bottom - top) / 100
    depths = np.round(top + step * np.arange(101), 6)
    codes = np.zeros(depths.size)
    for row in log["intervals"]:
        codes[(depths >= row["from"]) & (depths <= row["to"])] = row["class_id"]
    las = lasio.LASFile()
    las.well["WELL"].value = well
    las.well["STRT"].value, las.well["STOP"].value, las.well["STEP"].value = top, bottom, step
    for item in ("STRT", "STOP", "STEP"):
        las.well[item].unit = log["unit"].upper()
    las.append_curve("DEPT", depths, unit=log["unit"].upper(), descr="Depth")
    las.append_curve("LITH", codes, unit="", descr="Lithology class id (0: no core); names in ~Parameter")
    for lithology in table.classes:
        las.params.append(lasio.HeaderItem(f"L{lithology.id:02d}", value=lithology.name, descr="lithology class"))
    buffer = io.StringIO()
    las.write(buffer, version=2.0)
    return buffer.getvalue()
