"""Evaluate a checkpoint on a labelled folder (or on held-out synthetic seeds) with the service's tiling.

    python -m pipelines.evaluate --model models/lithoseg-default --data ../shared/data/real_cores \
        --only cc05,cc26 --json var/eval/real.json
    python -m pipelines.evaluate --model models/lithoseg-default --synthetic 60 --json var/eval/synth.json

Prints per-class IoU, mIoU over the rock classes present, pixel accuracy and rock-vs-background
IoU, and writes the whole report (confusion matrix included) as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipelines.classes import ClassTable
from pipelines.datasets import LabelledImage, load_folder, synthetic_item
from pipelines.metrics import ConfusionMatrix
from pipelines.model import LoadedModel, load_checkpoint
from pipelines.segment import segment_image

SYNTHETIC_TEST_SEED = 20_000_000  # the held-out synthetic test set; training never draws these


def evaluate_items(model: LoadedModel, items: list[LabelledImage], class_table: ClassTable) -> dict[str, Any]:
    confusion = ConfusionMatrix(len(class_table))
    for item in items:
        confusion.update(item.mask, segment_image(model, item.image).class_ids)
    report = confusion.report(class_table)
    report["images"] = len(items)
    return report


def format_report(report: dict[str, Any]) -> str:
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
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate a lithoseg checkpoint.")
    parser.add_argument("--model", required=True, help="checkpoint directory")
    parser.add_argument("--data", help="labelled folder (images/, masks/)")
    parser.add_argument("--only", default="", help="comma-separated photo ids to evaluate (default: all)")
    parser.add_argument("--synthetic", type=int, default=0, help="evaluate on this many held-out synthetic seeds")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    model = load_checkpoint(args.model)
    if args.data:
        names = {n for n in args.only.split(",") if n} or None
        items = load_folder(args.data, names=names)
    else:
        items = [synthetic_item(SYNTHETIC_TEST_SEED + i) for i in range(args.synthetic)]
    if not items:
        parser.error("Nothing to evaluate: give --data or --synthetic N.")
    report = evaluate_items(model, items, model.config.class_table)
    report["model"] = {"path": str(args.model), "name": model.config.name, "version": model.config.version}
    print(format_report(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
