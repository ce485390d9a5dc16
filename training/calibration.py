"""Measure and fit the calibration of per-pixel confidence on real labelled photos.

    python -m training.calibration --model models/lithoseg-default --data ../shared/data/real_cores \
        --only cc05,cc26,dji0045,dji0049,dji0059 [--write] [--doc docs/calibration]
    python -m training.calibration --folds var/cv/r1 --data ../shared/data/real_cores [--doc ...]

Each photo is segmented as the service does (`pipelines.segment.segment_image`, with the
checkpoint's calibration switched off), and every labelled pixel gives a pair (raw confidence,
right or not). Reported: the expected calibration error (ECE, 15 equal-width bins) before, and
after a fit, isotonic (pool-adjacent-violators on the 256 raw values) or a one-parameter power
p -> p**a (both written by hand: a few lines each, and scikit-learn would be a large dependency
for them), measured leave-one-photo-out
(fitted on the other photos, scored on the one left out), so the "after" figure is not scored on
the photos it was fitted on. `--folds` pools the cross-validation's folds instead: each photo is
segmented by the fold model that never saw it, so every labelled photo counts (the fit is then for
a model trained with that recipe; `--settings-from` segments with the inference settings that model
ships with). `--write` stores the fit on all the photos in the checkpoint's
config.json (`confidence_calibration`); `--doc` writes the report `<doc>.json` and the
reliability diagram `<doc>.svg`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

BINS = 15


def pairs(model: Any, items: list[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(raw confidence uint8, correct bool) over each photo's labelled pixels."""
    from pipelines.segment import segment_image
    from training.metrics import IGNORE_ID

    raw = model.uncalibrated()
    found = []
    for item in items:
        segmentation = segment_image(raw, item.image)
        labelled = item.mask != IGNORE_ID
        found.append((segmentation.confidence[labelled], segmentation.class_ids[labelled] == item.mask[labelled]))
    return found


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> tuple[float, list[dict[str, float]]]:
    """(ECE, per bin: its range, mean confidence, accuracy, share of pixels) for uint8 confidences."""
    p = confidence.astype(np.float64) / 255.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        if not count:
            continue
        mean_p, accuracy = float(p[inside].mean()), float(correct[inside].mean())
        ece += count / p.size * abs(mean_p - accuracy)
        table.append(
            {"low": float(edges[b]), "high": float(edges[b + 1]), "confidence": mean_p, "accuracy": accuracy, "share": count / p.size}
        )
    return ece, table


def fit_isotonic(confidence: np.ndarray, correct: np.ndarray) -> list[int]:
    """The monotone map raw confidence (0-255) -> calibrated confidence × 255 that best fits the
    accuracy (pool adjacent violators, weighted by pixel counts)."""
    counts = np.bincount(confidence, minlength=256).astype(np.float64)
    hits = np.bincount(confidence, weights=correct.astype(np.float64), minlength=256)
    blocks: list[list[float]] = []  # [sum of hits, sum of counts, first value, last value]
    for value in range(256):
        if counts[value] == 0:
            continue
        blocks.append([hits[value], counts[value], value, value])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], blocks[-1][2], last[3]]
    if not blocks:
        return list(range(256))
    # each raw value takes its block's accuracy; values never seen, the nearest block's
    centres = np.array([(b[2] + b[3]) / 2 for b in blocks])
    levels = np.array([b[0] / b[1] for b in blocks])
    mapped = np.interp(np.arange(256), centres, levels)
    return [int(v) for v in np.clip(np.round(mapped * 255), 0, 255)]


def fit_power(confidence: np.ndarray, correct: np.ndarray) -> list[int]:
    """The map p -> p**a (one parameter, like a temperature: monotone, 1 stays 1) whose
    calibrated confidences have the least log-loss on these pixels, as a 256-entry table."""
    p = np.clip(np.arange(256) / 255.0, 1e-4, 1.0)
    counts = np.bincount(confidence, minlength=256).astype(np.float64)
    hits = np.bincount(confidence, weights=correct.astype(np.float64), minlength=256)

    def loss(a: float) -> float:
        q = np.clip(p**a, 1e-4, 1 - 1e-4)
        return float(-(hits * np.log(q) + (counts - hits) * np.log(1 - q)).sum())

    best = min(np.linspace(0.5, 6.0, 111), key=loss)
    return [int(v) for v in np.clip(np.round(p**best * 255), 0, 255)]


FITS = {"isotonic": fit_isotonic, "power": fit_power}


def evaluate(
    per_photo: list[tuple[np.ndarray, np.ndarray]],
    method: str = "isotonic",
    groups: list[int] | None = None,
    table: list[int] | None = None,
) -> dict[str, Any]:
    """ECE before, ECE after fits each scored on photos it was not fitted on, and the fit on every
    photo. `groups`: one per photo (e.g. the fold whose model segmented it); a whole group is
    left out at a time. Default: one photo at a time. `table`: a fit made elsewhere (on other
    photos), scored as it is instead."""
    fit = FITS[method]
    groups = list(range(len(per_photo))) if groups is None else groups
    confidence = np.concatenate([c for c, _ in per_photo])
    correct = np.concatenate([k for _, k in per_photo])
    before, table_before = reliability(confidence, correct)
    report: dict[str, Any] = {"pixels": int(confidence.size), "photos": len(per_photo), "ece_before": before, "bins_before": table_before}
    if table is not None:
        after, report["bins_after"] = reliability(np.asarray(table, np.uint8)[confidence], correct)
        return {**report, "groups": 0, "ece_after": after, "method": "the checkpoint's table"}
    held_out_conf, held_out_correct = [], []
    for left_out in sorted(set(groups)):
        fitted_on = [p for p, group in zip(per_photo, groups, strict=True) if group != left_out]
        scored = [p for p, group in zip(per_photo, groups, strict=True) if group == left_out]
        lut = np.asarray(fit(np.concatenate([c for c, _ in fitted_on]), np.concatenate([k for _, k in fitted_on])), np.uint8)
        held_out_conf += [lut[c] for c, _ in scored]
        held_out_correct += [k for _, k in scored]
    after, report["bins_after"] = reliability(np.concatenate(held_out_conf), np.concatenate(held_out_correct))
    return {**report, "groups": len(set(groups)), "ece_after": after, "method": method, "fit": fit(confidence, correct)}


def after_label(report: dict[str, Any]) -> str:
    """How the "after" figure of a report was scored."""
    if not report["groups"]:
        return "the checkpoint's table, fitted on other photos"
    return f"leave one {'photo' if report['groups'] == report['photos'] else 'fold'} out"


def svg(report: dict[str, Any]) -> str:
    """The reliability diagram: accuracy against confidence per bin, before and after."""
    size, pad = 360, 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 2 * pad}" height="{size + 2 * pad}" font-family="sans-serif">',
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#999"/>',
        f'<line x1="{pad}" y1="{pad + size}" x2="{pad + size}" y2="{pad}" stroke="#bbb" stroke-dasharray="4"/>',
    ]
    curves = (
        ("bins_before", "ece_before", "#d62728", "before"),
        ("bins_after", "ece_after", "#1f77b4", f"after ({after_label(report)})"),
    )
    for row, (bins, ece, colour, label) in enumerate(curves):
        xy = [(pad + b["confidence"] * size, pad + (1 - b["accuracy"]) * size) for b in report[bins]]
        parts.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in xy)}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in xy]
        parts.append(f'<text x="{pad + 8}" y="{pad + 15 * (row + 1)}" font-size="11" fill="{colour}">{label}: ECE {report[ece]:.3f}</text>')
    parts.append(f'<text x="{pad + size / 2}" y="{pad + size + 28}" font-size="11" text-anchor="middle">confidence</text>')
    parts.append(
        f'<text x="12" y="{pad + size / 2}" font-size="11" transform="rotate(-90 12 {pad + size / 2})" text-anchor="middle">accuracy</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    """`python -m training.calibration`: measure, fit and (with --write) store the calibration."""
    from pipelines.model import load_checkpoint, read_config, update_config
    from training.crossval import finished_folds
    from training.datasets import load_folder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="the checkpoint to measure (with --only), or to store the fit in (with --folds and --write)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--only", help="photo ids (held out from training), comma-separated")
    parser.add_argument("--folds", help="a cross-validation run (training.crossval --out): each fold's model on its held-out photos")
    parser.add_argument("--settings-from", help="with --folds: segment with this checkpoint's inference settings (the fit's model)")
    parser.add_argument("--exclude", default="", help="with --folds: photo ids kept out of the fit (those a checkpoint is scored on)")
    parser.add_argument("--method", choices=sorted(FITS), default="isotonic", help="isotonic (256 free levels) or power (p**a)")
    parser.add_argument("--write", action="store_true", help="store the fit in --model's config.json")
    parser.add_argument("--doc", help="write <doc>.svg and <doc>.json")
    args = parser.parse_args(argv)
    if bool(args.folds) == bool(args.only):
        parser.error("Give either --model with --only (photos it never saw) or --folds.")
    if (args.only or args.write) and not args.model:
        parser.error("--only and --write need --model.")
    table = None
    if args.folds:
        folds = finished_folds(args.folds)
        if not folds:
            parser.error(f"No fold under {args.folds} has run all its steps.")
        excluded = set(filter(None, args.exclude.split(",")))
        kept = [(checkpoint, set(ids) - excluded) for checkpoint, ids in folds if set(ids) - excluded]
        settings = read_config(args.settings_from) if args.settings_from else None

        def fold_model(checkpoint: Path) -> Any:  # one fold's model at a time, run as the fit's model runs
            model = load_checkpoint(checkpoint)
            return model.with_settings_of(settings) if settings else model

        per_fold = [pairs(fold_model(checkpoint), load_folder(args.data, ids)) for checkpoint, ids in kept]
        per_photo = [p for photos in per_fold for p in photos]
        groups = [fold for fold, photos in enumerate(per_fold) for _ in photos]  # a fold's photos left out together
    else:
        model = load_checkpoint(args.model)
        table = model.config.confidence_calibration
        if args.write and table is not None:
            parser.error("The checkpoint has a table already: it is scored on --only, not refitted there (fit with --folds).")
        per_photo, groups = pairs(model, load_folder(args.data, set(args.only.split(",")))), None
    report = evaluate(per_photo, args.method, groups, table)
    print(f"{report['pixels']:,} labelled pixels on {report['photos']} photos: ECE {report['ece_before']:.4f} before, "
          f"{report['ece_after']:.4f} after ({after_label(report)})")  # fmt: skip
    if args.write:
        update_config(args.model, {"confidence_calibration": report["fit"]})
    if args.doc:
        Path(args.doc).with_suffix(".svg").write_text(svg(report))
        Path(args.doc).with_suffix(".json").write_text(json.dumps({k: v for k, v in report.items() if k != "fit"}, indent=1))


if __name__ == "__main__":
    main()
