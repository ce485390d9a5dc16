"""Measure and fit the calibration of per-pixel confidence on real labelled photos.

    python -m training.calibration --model models/lithoseg-default --data ../shared/data/real_cores \
        --only cc05,cc26,dji0045,dji0049,dji0059 [--write] [--doc docs/calibration]
    python -m training.calibration --folds var/cv/r4 --data ../shared/data/real_cores \
        --settings-from models/lithoseg-default [--recorded docs/calibration-levels-r4.json] \
        [--record docs/calibration-levels-r4.json] [--doc ...]

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
ships with). Every fit and figure works on each photo's 256 confidence levels (pixels and right
answers per level, exact for uint8 confidences): `--record` keeps them per photo in a small JSON,
and `--recorded` pools an earlier record with the folds run now, so that folds trained in
different sessions (whose models did not survive) still count. `--write` stores the fit on all the photos in the checkpoint's
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
LEVELS = 256  # confidence travels as uint8: every fit and every figure here works on its 256 levels


def levels(confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """(2, 256) int64: the pixels at each raw confidence level, and how many of them are right.
    Everything calibration needs from a photo, exactly (confidences are uint8), in 4 KB: kept per
    photo so that fits can pool photos measured in other sessions (`--record`, `--recorded`)."""
    confidence = np.asarray(confidence, np.uint8).ravel()
    correct = np.asarray(correct, bool).ravel()
    return np.stack([np.bincount(confidence, minlength=LEVELS), np.bincount(confidence[correct], minlength=LEVELS)]).astype(np.int64)


def photo_levels(model: Any, items: list[Any]) -> list[np.ndarray]:
    """`levels` of each photo's labelled pixels, segmented as the service does without the table."""
    from pipelines.segment import segment_image
    from training.metrics import IGNORE_ID

    raw = model.uncalibrated()
    found = []
    for item in items:
        segmentation = segment_image(raw, item.image)
        labelled = item.mask != IGNORE_ID
        found.append(levels(segmentation.confidence[labelled], segmentation.class_ids[labelled] == item.mask[labelled]))
    return found


def remap(histogram: np.ndarray, table: list[int] | np.ndarray) -> np.ndarray:
    """The levels after a calibration table: each raw level's pixels moved to the level it maps to."""
    target = np.asarray(table, np.int64)
    return np.stack([np.bincount(target, weights=row, minlength=LEVELS) for row in histogram]).round().astype(np.int64)


def reliability(histogram: np.ndarray, bins: int = BINS) -> tuple[float, list[dict[str, float]]]:
    """(ECE, per bin: its range, mean confidence, accuracy, share of pixels) for a `levels` histogram."""
    counts, hits = histogram.astype(np.float64)
    p = np.arange(LEVELS) / (LEVELS - 1.0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = counts.sum()
    table, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        count = counts[inside].sum()
        if not count:
            continue
        mean_p, accuracy = float((p[inside] * counts[inside]).sum() / count), float(hits[inside].sum() / count)
        ece += count / total * abs(mean_p - accuracy)
        table.append(
            {"low": float(edges[b]), "high": float(edges[b + 1]), "confidence": mean_p, "accuracy": accuracy, "share": float(count / total)}
        )
    return float(ece), table


def fit_isotonic(histogram: np.ndarray) -> list[int]:
    """The monotone map raw confidence (0-255) -> calibrated confidence × 255 that best fits the
    accuracy (pool adjacent violators, weighted by pixel counts)."""
    counts, hits = histogram.astype(np.float64)
    blocks: list[list[float]] = []  # [sum of hits, sum of counts, first value, last value]
    for value in range(LEVELS):
        if counts[value] == 0:
            continue
        blocks.append([hits[value], counts[value], value, value])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], blocks[-1][2], last[3]]
    if not blocks:
        return list(range(LEVELS))
    # each raw value takes its block's accuracy; values never seen, the nearest block's
    centres = np.array([(b[2] + b[3]) / 2 for b in blocks])
    accuracy = np.array([b[0] / b[1] for b in blocks])
    mapped = np.interp(np.arange(LEVELS), centres, accuracy)
    return [int(v) for v in np.clip(np.round(mapped * 255), 0, 255)]


def fit_power(histogram: np.ndarray) -> list[int]:
    """The map p -> p**a (one parameter, like a temperature: monotone, 1 stays 1) whose
    calibrated confidences have the least log-loss on these pixels, as a 256-entry table."""
    p = np.clip(np.arange(LEVELS) / 255.0, 1e-4, 1.0)
    counts, hits = histogram.astype(np.float64)

    def loss(a: float) -> float:
        q = np.clip(p**a, 1e-4, 1 - 1e-4)
        return float(-(hits * np.log(q) + (counts - hits) * np.log(1 - q)).sum())

    best = min(np.linspace(0.5, 6.0, 111), key=loss)
    return [int(v) for v in np.clip(np.round(p**best * 255), 0, 255)]


FITS = {"isotonic": fit_isotonic, "power": fit_power}


def evaluate(
    per_photo: list[np.ndarray],
    method: str = "isotonic",
    groups: list[Any] | None = None,
    table: list[int] | None = None,
) -> dict[str, Any]:
    """ECE before, ECE after fits each scored on photos it was not fitted on, and the fit on every
    photo. `per_photo`: each photo's `levels`. `groups`: one per photo (e.g. the fold whose model
    segmented it); a whole group is left out at a time. Default: one photo at a time. `table`: a
    fit made elsewhere (on other photos), scored as it is instead."""
    fit = FITS[method]
    groups = list(range(len(per_photo))) if groups is None else groups
    pooled = np.sum(per_photo, axis=0)
    before, table_before = reliability(pooled)
    report: dict[str, Any] = {"pixels": int(pooled[0].sum()), "photos": len(per_photo), "ece_before": before, "bins_before": table_before}
    if table is not None:
        after, report["bins_after"] = reliability(remap(pooled, table))
        return {**report, "groups": 0, "ece_after": after, "method": "the checkpoint's table"}
    scored_after = np.zeros_like(pooled)
    for left_out in sorted(set(groups), key=str):
        fitted_on = [h for h, group in zip(per_photo, groups, strict=True) if group != left_out]
        scored = np.sum([h for h, group in zip(per_photo, groups, strict=True) if group == left_out], axis=0)
        scored_after += remap(scored, fit(np.sum(fitted_on, axis=0)) if fitted_on else list(range(LEVELS)))
    after, report["bins_after"] = reliability(scored_after)
    return {**report, "groups": len(set(groups)), "ece_after": after, "method": method, "fit": fit(pooled)}


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


def recorded_photos(
    measured: dict[str, tuple[str, np.ndarray]], recipe: str | None, settings: dict[str, Any] | None, recorded: dict[str, Any] | None
) -> dict[str, tuple[str, np.ndarray]]:
    """The photos measured here (photo id → (fold, `levels`)) with those of an earlier `--record`
    added where this run did not measure them, so the folds of sessions on different machines
    pool. Refused when the record is of another recipe or was segmented with other settings: its
    confidences would not be this model's."""
    from pipelines.model import same_settings
    from training.crossval import same_recipe

    if not recorded:
        return measured
    their_recipe = recorded.get("recipe")
    if recipe is not None and their_recipe is not None and same_recipe(json.dumps(their_recipe)) != same_recipe(recipe):
        raise ValueError("The recorded levels are of another recipe than the folds here; keep them apart.")
    if not same_settings(recorded["settings"], settings):
        raise ValueError("The recorded levels were segmented with other inference settings than --settings-from gives.")
    earlier = {photo: (row["fold"], np.array([row["pixels"], row["right"]], np.int64)) for photo, row in recorded["photos"].items()}
    return {**earlier, **measured}


def record(photos: dict[str, tuple[str, np.ndarray]], recipe: str | None, settings: dict[str, Any] | None) -> dict[str, Any]:
    """What `--record` writes: per photo its fold and `levels`, with the recipe and settings they hold for."""
    return {
        "recipe": json.loads(recipe) if recipe else None,
        "settings": settings,
        "photos": {
            photo: {"fold": fold, "pixels": histogram[0].tolist(), "right": histogram[1].tolist()}
            for photo, (fold, histogram) in sorted(photos.items())
        },
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m training.calibration`: measure, fit and (with --write) store the calibration."""
    from pipelines.model import load_checkpoint, read_config, update_config
    from training.crossval import finished_folds, fold_recipe, one_recipe
    from training.datasets import load_folder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="the checkpoint to measure (with --only), or to store the fit in (with --folds and --write)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--only", help="photo ids (held out from training), comma-separated")
    parser.add_argument("--folds", help="a cross-validation run (training.crossval --out): each fold's model on its held-out photos")
    parser.add_argument("--settings-from", help="with --folds: segment with this checkpoint's inference settings (the fit's model)")
    parser.add_argument("--exclude", default="", help="with --folds: photo ids kept out of the fit (those a checkpoint is scored on)")
    parser.add_argument("--record", help="with --folds: write each photo's confidence levels to this JSON")
    parser.add_argument("--recorded", help="with --folds: an earlier --record (same recipe, settings): fills in folds not run here")
    parser.add_argument("--method", choices=sorted(FITS), default="isotonic", help="isotonic (256 free levels) or power (p**a)")
    parser.add_argument("--write", action="store_true", help="store the fit in --model's config.json")
    parser.add_argument("--doc", help="write <doc>.svg and <doc>.json")
    args = parser.parse_args(argv)
    if bool(args.folds) == bool(args.only):
        parser.error("Give either --model with --only (photos it never saw) or --folds.")
    if (args.only or args.write) and not args.model:
        parser.error("--only and --write need --model.")
    if (args.record or args.recorded) and not args.folds:
        parser.error("--record and --recorded go with --folds.")
    table = None
    if args.folds:
        folds = finished_folds(args.folds)
        if not folds and not args.recorded:
            parser.error(f"No fold under {args.folds} has run all its steps.")
        excluded = set(filter(None, args.exclude.split(",")))
        kept = [(checkpoint, set(ids) - excluded) for checkpoint, ids in folds if set(ids) - excluded]
        settings = read_config(args.settings_from) if args.settings_from else None
        recipes = {r for r in (fold_recipe(checkpoint.parent) for checkpoint, _ in kept) if r is not None}
        recipe = one_recipe(recipes) if recipes else None
        if recipes and recipe is None:
            parser.error(f"The folds under {args.folds} differ in recipe: calibrate one recipe at a time.")
        recorded = json.loads(Path(args.recorded).read_text()) if args.recorded else None
        if recipe is None and recorded and recorded.get("recipe") is not None:  # nothing run here: the record's
            recipe = json.dumps(recorded["recipe"], sort_keys=True)

        def fold_model(checkpoint: Path) -> Any:  # one fold's model at a time, run as the fit's model runs
            model = load_checkpoint(checkpoint)
            return model.with_settings_of(settings) if settings else model

        measured: dict[str, tuple[str, np.ndarray]] = {}
        for checkpoint, ids in kept:
            items = load_folder(args.data, ids)
            found = photo_levels(fold_model(checkpoint), items)
            measured |= {item.name: (checkpoint.parent.name, h) for item, h in zip(items, found, strict=True)}
        inference = settings.inference_settings() if settings else None
        try:
            photos = recorded_photos(measured, recipe, inference, recorded)
        except ValueError as exc:
            parser.error(str(exc))
        photos = {photo: row for photo, row in photos.items() if photo not in excluded}
        if args.record:
            Path(args.record).write_text(json.dumps(record(photos, recipe, inference)) + "\n")
        per_photo = [histogram for _, histogram in photos.values()]
        groups: list[Any] | None = [fold for fold, _ in photos.values()]  # a fold's photos left out together
    else:
        model = load_checkpoint(args.model)
        table = model.config.confidence_calibration
        if args.write and table is not None:
            parser.error("The checkpoint has a table already: it is scored on --only, not refitted there (fit with --folds).")
        per_photo, groups = photo_levels(model, load_folder(args.data, set(args.only.split(",")))), None
    report = evaluate(per_photo, args.method, groups, table)
    print(f"{report['pixels']:,} labelled pixels on {report['photos']} photos: ECE {report['ece_before']:.4f} before, "
          f"{report['ece_after']:.4f} after ({after_label(report)})")  # fmt: skip
    shipped = settings.confidence_calibration if args.folds and settings else None
    if shipped is not None:  # the table --settings-from ships, on these photos (out of sample where it was fitted on others)
        report["ece_with_shipped_table"] = reliability(remap(np.sum(per_photo, axis=0), shipped))[0]
        print(f"with the table {args.settings_from} ships: ECE {report['ece_with_shipped_table']:.4f}")
    if args.write:
        update_config(args.model, {"confidence_calibration": report["fit"]})
    if args.doc:
        Path(args.doc).with_suffix(".svg").write_text(svg(report))
        Path(args.doc).with_suffix(".json").write_text(json.dumps({k: v for k, v in report.items() if k != "fit"}, indent=1))


if __name__ == "__main__":
    main()
