"""What a folder's labels allow a model to score: speckle in the rock and how two rock classes split.

    python -m training.label_audit --data ../shared/data/real_cores [--pair 1,7] [--json F]

Two properties of the labels themselves, measured without any model:

* **speckle**: the share of a photo's labelled rock that a morphological closing (a `--closing`
  px square, 15 by default) adds, i.e. the background holes, cracks and gaps inside and between
  labelled pieces. Labels made by intensity segmentation leave dark laminae and cracks as
  background; a prediction that fills them is judged false rock for every such pixel.
* **grey-level split of two rock classes** (`--pair`, class ids; default: the folder's two
  largest rock classes): within each photo, the best accuracy of one grey-level threshold at
  telling the two classes' pixels apart, which way round (which class is the lighter), and the
  same with a single threshold for all photos pooled. A split that one threshold per photo makes
  almost perfectly, but whose threshold or direction changes between photos, is a split made
  relative to each photo: a network that sees one tile at a time cannot learn it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from pipelines.classes import BACKGROUND_ID, default_class_table
from training.datasets import LabelledImage, load_folder
from training.metrics import IGNORE_ID


def speckle_share(rock: np.ndarray, closing: int = 15) -> float:
    """Share of the rock pixels of `rock` (bool (H, W)) that a closing with a `closing`-px square
    adds (0: none; 0.2: a fifth of the rock's area again lies in holes and gaps between rock)."""
    if closing % 2 == 0 or closing < 3:
        raise ValueError(f"The closing must be an odd size of 3 px or more, not {closing}.")
    area = int(rock.sum())
    if not area:
        return 0.0
    # pad so that the closing does not treat the picture's edge as rock (or as a wall)
    pad = closing
    padded = Image.fromarray(np.pad(rock, pad).astype(np.uint8) * 255)
    closed = np.asarray(padded.filter(ImageFilter.MaxFilter(closing)).filter(ImageFilter.MinFilter(closing)))[pad:-pad, pad:-pad] > 0
    return float((closed & ~rock).sum() / area)


def grey_histograms(grey: np.ndarray, mask: np.ndarray, first: int, second: int) -> tuple[np.ndarray, np.ndarray]:
    """Histograms (256 bins) of the grey levels of the pixels labelled `first` and `second`."""
    return (
        np.bincount(grey[mask == first], minlength=256).astype(np.int64),
        np.bincount(grey[mask == second], minlength=256).astype(np.int64),
    )


def best_threshold(first: np.ndarray, second: np.ndarray) -> dict[str, Any]:
    """The best single grey-level threshold between two classes, from their histograms: its
    accuracy over both classes' pixels, the threshold (a level is above it when > threshold)
    and which class lies above it ("first" or "second" is the lighter)."""
    total = int(first.sum() + second.sum())
    if not total:
        return {"accuracy": None, "threshold": None, "lighter": None}
    # threshold t: levels <= t on one side; accuracy if `first` is the lighter class:
    # second's pixels at or under t plus first's above t
    second_below = np.cumsum(second)
    first_above = first.sum() - np.cumsum(first)
    first_lighter = (second_below + first_above) / total
    second_lighter = 1.0 - first_lighter
    t_first, t_second = int(np.argmax(first_lighter)), int(np.argmax(second_lighter))
    if first_lighter[t_first] >= second_lighter[t_second]:
        return {"accuracy": float(first_lighter[t_first]), "threshold": t_first, "lighter": "first"}
    return {"accuracy": float(second_lighter[t_second]), "threshold": t_second, "lighter": "second"}


def largest_rock_pair(items: list[LabelledImage]) -> tuple[int, int]:
    """The two rock classes with the most labelled pixels over `items`."""
    counts = np.zeros(256, np.int64)
    for item in items:
        counts += np.bincount(item.mask.ravel(), minlength=256)
    counts[[BACKGROUND_ID, IGNORE_ID]] = 0
    first, second = (int(c) for c in np.argsort(-counts)[:2])
    if not counts[second]:
        raise ValueError("The labels hold fewer than two rock classes: there is no split to audit.")
    return first, second


def audit(items: list[LabelledImage], pair: tuple[int, int], closing: int = 15) -> dict[str, Any]:
    """Per photo: rock pixels, speckle share, and the split of `pair` by grey level; then pooled."""
    first, second = pair
    photos, pooled_first, pooled_second = [], np.zeros(256, np.int64), np.zeros(256, np.int64)
    for item in items:
        rock = (item.mask != BACKGROUND_ID) & (item.mask != IGNORE_ID)
        grey = np.asarray(Image.fromarray(item.image).convert("L"))
        hist_first, hist_second = grey_histograms(grey, item.mask, first, second)
        pooled_first += hist_first
        pooled_second += hist_second
        levels = np.arange(256)
        row: dict[str, Any] = {"name": item.name, "rock_pixels": int(rock.sum()), "speckle": speckle_share(rock, closing)}
        for key, hist in (("first", hist_first), ("second", hist_second)):
            row[f"{key}_pixels"] = int(hist.sum())
            row[f"{key}_mean_grey"] = float((hist * levels).sum() / hist.sum()) if hist.sum() else None
        row["split"] = best_threshold(hist_first, hist_second) if hist_first.sum() and hist_second.sum() else None
        photos.append(row)
    larger = max(pooled_first.sum(), pooled_second.sum()) / max(1, pooled_first.sum() + pooled_second.sum())
    return {
        "pair": list(pair),
        "closing": closing,
        "photos": photos,
        "pooled_split": best_threshold(pooled_first, pooled_second),
        "pooled_larger_class_share": float(larger),
    }


def format_audit(report: dict[str, Any], names: tuple[str, str]) -> str:
    """The audit as a text table."""
    first, second = names
    lines = [
        f"speckle: share of the rock a {report['closing']} px closing adds; split: {first} (1) against {second} (2) by grey level",
        f"{'photo':<12} {'rock px':>9} {'speckle':>8} {'px (1)':>9} {'px (2)':>9} {'grey (1)':>9} {'grey (2)':>9} {'split':>6} lighter",
    ]
    for row in report["photos"]:
        grey = [f"{row[k]:>9.0f}" if row[k] is not None else f"{'-':>9}" for k in ("first_mean_grey", "second_mean_grey")]
        split = row["split"]
        accuracy, lighter = (
            (f"{split['accuracy']:>6.2f}", {"first": "(1)", "second": "(2)"}[split["lighter"]]) if split else (f"{'-':>6}", "")
        )
        lines.append(
            f"{row['name']:<12} {row['rock_pixels']:>9} {row['speckle']:>8.3f} {row['first_pixels']:>9} {row['second_pixels']:>9} "
            f"{grey[0]} {grey[1]} {accuracy} {lighter}"
        )
    pooled = report["pooled_split"]
    if pooled["accuracy"] is not None:
        lines.append(
            f"one threshold for all photos: {pooled['accuracy']:.2f} of the pixels "
            f"(always the larger class: {report['pooled_larger_class_share']:.2f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """`python -m training.label_audit`: what a labelled folder's masks allow a model to score."""
    parser = argparse.ArgumentParser(description="Audit a labelled folder's masks: speckle in the rock, grey-level split of two classes.")
    parser.add_argument("--data", required=True, help="labelled folder (images/, masks/)")
    parser.add_argument("--only", default="", help="comma-separated photo ids (default: all)")
    parser.add_argument("--pair", default="", help="two rock class ids, e.g. 1,7 (default: the two largest rock classes)")
    parser.add_argument("--closing", type=int, default=15, help="closing size in px for the speckle share (odd, default 15)")
    parser.add_argument("--json", help="write the audit here")
    args = parser.parse_args(argv)
    items = load_folder(args.data, names={n for n in args.only.split(",") if n} or None)
    if not items:
        parser.error("No labelled photos to audit.")
    try:
        pair = tuple(int(v) for v in args.pair.split(",")) if args.pair else largest_rock_pair(items)
        if len(pair) != 2:
            raise ValueError("--pair takes two class ids, e.g. 1,7.")
        report = audit(items, (pair[0], pair[1]), args.closing)
    except ValueError as exc:
        parser.error(str(exc))
    classes = default_class_table().classes
    names = (classes[pair[0]].name, classes[pair[1]].name) if max(pair) < len(classes) else (str(pair[0]), str(pair[1]))
    print(format_audit(report, names))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
