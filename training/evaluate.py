"""Evaluate a checkpoint on a labelled folder (or on held-out synthetic seeds) with the service's tiling.

    python -m training.evaluate --model models/lithoseg-default --data ../shared/data/real_cores \
        --only cc05,cc26 --json var/eval/real.json
    python -m training.evaluate --model models/lithoseg-default --synthetic 60 --json var/eval/synth.json
    python -m training.evaluate --model models/lithoseg-default --synthetic 60 --synthetic-seed 41000000

Prints per-class IoU, mIoU over the rock classes present, pixel accuracy and rock-vs-background
IoU with the pixels it gets wrong (false rock, missed rock) and those of the wrong rock class, then
the same figures per image, and writes the whole report (confusion matrix included) as
JSON. `--overlays DIR` also writes, per image, a PNG of the photo, the truth, the prediction and an
error map side by side (green: rock found, blue: background called rock, red: rock called
background, orange: rock of the wrong class), to see where a checkpoint fails. `--ignore-regions
FILE` leaves out of the count boxes whose labels are known to be wrong: a JSON object whose
`regions` map photo ids to lists of pixel boxes [x0, y0, x1, y1] (end-exclusive), e.g.
`models/lithoseg-default/holdout_label_gaps.json`. `--rescale F` resamples every photo and its
labels by F first (a camera of F times the resolution), to see how a checkpoint copes with larger
or smaller photos; `--native` segments at each photo's own resolution only, even where the
checkpoint names a `max_short_side` or `scales` (`pipelines/resolution.py`). Synthetic images
are drawn from seed 20,000,000 on (the test set) or from `--synthetic-seed`, never from the seeds
training draws.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipelines.classes import ClassTable
from pipelines.engines import ENGINES
from pipelines.errors import CheckpointError
from pipelines.model import LoadedModel, load_checkpoint, read_config
from pipelines.segment import segment_image
from training.datasets import (
    EVERY_PIXEL,
    JUDGING,
    DatasetError,
    LabelledImage,
    expose_item,
    ignore_regions,
    judged_labels,
    load_folder,
    partially_labelled,
    rescale_item,
    synthetic_item,
)
from training.metrics import IGNORE_ID, ConfusionMatrix
from training.synthetic import TRAINING_SEEDS_BELOW

SYNTHETIC_TEST_SEED = 20_000_000  # the held-out synthetic test set; training never draws these


PER_IMAGE_FIGURES = (
    "rock_vs_background_iou",
    "miou_rock_present",
    "pixel_accuracy",
    "false_rock_pixels",
    "missed_rock_pixels",
    "wrong_rock_class_pixels",
)
ERROR_COLOURS = {"rock_found": (40, 170, 60), "false_rock": (40, 80, 230), "missed_rock": (220, 40, 40), "wrong_class": (245, 150, 30)}


def error_map(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: where a prediction is right and wrong about rock (colours in ERROR_COLOURS;
    black: background found, white: pixels the label does not judge)."""
    rock_truth, rock_predicted = (truth != 0) & (truth != IGNORE_ID), predicted != 0
    out = np.zeros((*truth.shape, 3), np.uint8)
    out[rock_truth & rock_predicted & (truth == predicted)] = ERROR_COLOURS["rock_found"]
    out[rock_truth & rock_predicted & (truth != predicted)] = ERROR_COLOURS["wrong_class"]
    out[(truth == 0) & rock_predicted] = ERROR_COLOURS["false_rock"]
    out[rock_truth & ~rock_predicted] = ERROR_COLOURS["missed_rock"]
    out[truth == IGNORE_ID] = 255
    return out


def overlay_strip(item: LabelledImage, predicted: np.ndarray, class_table: ClassTable) -> np.ndarray:
    """Photo | truth | prediction | error map, side by side."""
    palette = np.full((256, 3), 255, np.uint8)
    palette[: len(class_table)] = class_table.palette
    return np.concatenate([item.image, palette[item.mask], palette[predicted], error_map(item.mask, predicted)], axis=1)


def evaluate_items(
    model: LoadedModel, items: list[LabelledImage], class_table: ClassTable, overlays: Path | None = None, native: bool = False
) -> dict[str, Any]:
    """Segment each labelled image as the service does and accumulate the confusion matrix."""
    confusion = ConfusionMatrix(len(class_table))
    per_image = []
    for item in items:
        predicted = segment_image(model, item.image, native=native).class_ids
        own = ConfusionMatrix(len(class_table))
        own.update(item.mask, predicted)
        confusion.counts += own.counts
        figures = own.report(class_table)
        per_image.append({"name": item.name, **{k: figures[k] for k in PER_IMAGE_FIGURES}, "predicted_as": own.predicted_as(class_table)})
        if overlays is not None:
            overlays.mkdir(parents=True, exist_ok=True)
            Image.fromarray(overlay_strip(item, predicted, class_table)).save(overlays / f"{item.name}.png")
    report = confusion.report(class_table)
    report["images"] = len(items)
    report["per_image"] = per_image
    return report


def stored_figures(report: dict[str, Any]) -> dict[str, Any]:
    """An evaluation report as a checkpoint's config.json keeps it: without the confusion matrix."""
    return {k: v for k, v in report.items() if k != "confusion_matrix"}


def format_report(report: dict[str, Any]) -> str:
    """An evaluation report as text: per-class IoU, mIoU, rock-vs-background IoU."""
    lines = [f"{'class':<40} {'IoU':>7} {'pixels':>12}"]
    for name, row in report["per_class"].items():
        iou = "-" if row["iou"] is None else f"{row['iou']:.3f}"
        lines.append(f"{name:<40} {iou:>7} {row['pixels']:>12}")
    lines += [
        f"images: {report['images']}",
        f"mIoU over rock classes present: {report['miou_rock_present']:.3f}",
        f"mIoU over all classes present:  {report['miou_present']:.3f}",
        f"rock-vs-background IoU:         {report['rock_vs_background_iou']:.3f}",
        f"pixel accuracy:                 {report['pixel_accuracy']:.3f}",
        f"false rock / missed rock / wrong rock class: {report['false_rock_pixels']} "
        f"/ {report['missed_rock_pixels']} / {report['wrong_rock_class_pixels']} px",
        "",
        f"{'image':<40} {'rock IoU':>9} {'mIoU':>7} {'acc':>7} {'false rock':>11} {'missed rock':>12} {'wrong class':>12}",
    ]
    for row in report.get("per_image", []):
        lines.append(
            f"{row['name']:<40} {row['rock_vs_background_iou']:>9.3f} {row['miou_rock_present']:>7.3f} {row['pixel_accuracy']:>7.3f}"
            f" {row['false_rock_pixels']:>11} {row['missed_rock_pixels']:>12} {row['wrong_rock_class_pixels']:>12}"
        )
    shares = [(row["name"], truth, given) for row in report.get("per_image", []) for truth, given in row.get("predicted_as", {}).items()]
    if shares:
        lines += ["", "where each image's rock goes (share of its labelled pixels given each class):"]
        lines += [f"{name:<12} {truth:<38} -> " + ", ".join(f"{c} {v:.2f}" for c, v in given.items()) for name, truth, given in shares]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """`python -m training.evaluate`: a model on labelled photos or synthetic ones."""
    parser = argparse.ArgumentParser(description="Evaluate a lithoseg checkpoint.")
    parser.add_argument("--model", required=True, help="checkpoint directory")
    parser.add_argument("--data", help="labelled folder (images/, masks/)")
    parser.add_argument("--only", default="", help="comma-separated photo ids to evaluate (default: all)")
    parser.add_argument("--synthetic", type=int, default=0, help="evaluate on this many held-out synthetic seeds")
    parser.add_argument(
        "--synthetic-seed",
        type=int,
        default=SYNTHETIC_TEST_SEED,
        help=f"the first of them (default {SYNTHETIC_TEST_SEED:,}: the test set; training draws seeds under {TRAINING_SEEDS_BELOW:,})",
    )
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--ignore-regions", help='JSON file: {"regions": {photo id: [[x0, y0, x1, y1], ...]}} of labels not to judge')
    parser.add_argument("--overlays", help="write photo | truth | prediction | error map PNGs to this folder")
    parser.add_argument(
        "--rescale",
        type=float,
        default=1.0,
        help="resample photos and labels by this factor first (e.g. 2: a camera of twice the resolution)",
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="segment at each photo's own resolution only, ignoring the checkpoint's max_short_side and scales",
    )
    parser.add_argument(
        "--no-guided-filter",
        action="store_true",
        help="use the network's probabilities as they are, without the checkpoint's guided_filter",
    )
    parser.add_argument(
        "--exposure",
        type=float,
        default=1.0,
        help="multiply the photos' pixel values by this first (e.g. 0.45: an under-exposed camera), clipped at 255",
    )
    parser.add_argument(
        "--no-auto-exposure", action="store_true", help="segment the photos as they are, without the checkpoint's auto_exposure"
    )
    parser.add_argument(
        "--settings-from",
        help="a checkpoint directory: run the network with its inference settings (working size, scales, guided filter, auto-exposure)",
    )
    parser.add_argument(
        "--every-pixel",
        action="store_true",
        help="judge every pixel of partially labelled photos too (rock their labels leave out then counts as false rock)",
    )
    parser.add_argument(
        "--engine", default=None, choices=ENGINES, help="what runs the network (default: the checkpoint's engine; see pipelines/engines.py)"
    )
    args = parser.parse_args(argv)
    model = load_checkpoint(args.model, engine=args.engine)
    if model.engine is not None and model.engine.fallback_reason:
        print(f"engine: {model.engine.name} ({args.engine or model.config.engine} is not available: {model.engine.fallback_reason})")
    if args.settings_from:
        try:
            model = model.with_settings_of(read_config(args.settings_from))
        except CheckpointError as exc:
            parser.error(str(exc))
    if args.no_guided_filter:
        model.refine = None
    if args.no_auto_exposure:
        model.exposure = None
    if args.data:
        names = {n for n in args.only.split(",") if n} or None
        try:
            items = load_folder(args.data, names=names)
        except DatasetError as exc:
            parser.error(str(exc))
        partial = set() if args.every_pixel else partially_labelled(args.data)  # judged as validation and crossval judge
        items = [judged_labels(item, item.name in partial) for item in items]
        if args.ignore_regions:
            regions = json.loads(Path(args.ignore_regions).read_text())["regions"]
            items = [ignore_regions(item, regions.get(item.name, [])) for item in items]
    else:
        if args.synthetic_seed < TRAINING_SEEDS_BELOW:
            parser.error(f"--synthetic-seed must be {TRAINING_SEEDS_BELOW:,} or more: training draws the seeds below it.")
        items = [synthetic_item(args.synthetic_seed + i) for i in range(args.synthetic)]
    if not items:
        parser.error("Nothing to evaluate: give --data or --synthetic N.")
    if args.rescale <= 0:
        parser.error("--rescale must be a positive factor.")
    if args.rescale != 1.0:
        items = [rescale_item(item, args.rescale) for item in items]
    if args.exposure <= 0:
        parser.error("--exposure must be a positive factor.")
    if args.exposure != 1.0:
        items = [expose_item(item, args.exposure) for item in items]
    report = evaluate_items(model, items, model.config.class_table, Path(args.overlays) if args.overlays else None, native=args.native)
    if args.ignore_regions:
        report["ignore_regions"] = args.ignore_regions
    if args.data:
        report["judging"] = EVERY_PIXEL if args.every_pixel else JUDGING
    report["rescale"], report["native_resolution"], report["settings_from"] = args.rescale, args.native, args.settings_from
    report["guided_filter"], report["auto_exposure"], report["exposure"] = model.refinement, model.auto_exposure, args.exposure
    report["model"] = {"path": str(args.model), "name": model.config.name, "version": model.config.version}
    report["engine"] = model.engine.name if model.engine else "torch"
    print(format_report(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
