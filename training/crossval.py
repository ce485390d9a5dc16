"""k-fold cross-validation by photo: a recipe judged on every labelled photo, not on one split.

    python -m training.crossval folds --data ../shared/data/real_cores            # print the folds
    python -m training.crossval run --data ../shared/data/real_cores --out var/cv/r1 \
        [--fold 2] -- --steps 2400 --batch-size 8 --crop 256 --hue-jitter 0.05 ...  # train.py's options
    python -m training.crossval report --out var/cv/r1 [--recorded docs/crossval-r1.json] [--markdown] [--json F]
    python -m training.crossval rescore --data ../shared/data/real_cores --out var/cv/r1   # judge finished folds again
    python -m training.crossval rescore --data ../shared/data/real_cores --out var/cv/r1 \
        --settings-from models/lithoseg-default          # ... also with the shipped model's inference settings
    python -m training.crossval attach --out var/cv/r1 --model var/runs/r1-all/checkpoint \
        --settings-from models/lithoseg-default          # the folds' figures into the recipe's all-photo model
    python -m training.crossval seen --data ../shared/data/real_cores --model models/lithoseg-default
                                                         # the folds scored by a model that saw them: what the recipe fits

Folds are balanced across the photo sources (the handheld `cc*` and the drone `dji*` photos of
the data's manifest `subset`): each source's photos, in id order, are dealt round-robin, the
second source starting where the first stopped, so every fold holds both kinds and the fold
sizes differ by at most one. `run` trains one model per fold from ImageNet with the fold held out
(`training.train`, resumable: a fold whose run finished is skipped, an interrupted one resumes),
or from `--init`'s weights where those never saw the fold's photos (a shared synthetic-only
pretraining, say; a checkpoint trained on any held-out photo is refused);
each run's last validation is the fold's score on its held-out photos, measured as the service
segments them with the fold checkpoint's own inference settings (a fresh checkpoint's: one pass at
the photo's size, without the shipped model's scale search, guided filter and auto-exposure;
docs/crossval.md; `rescore --settings-from` scores them with another checkpoint's settings too,
reported beside), partially labelled photos judged on their labelled pixels only
(`training.datasets.judged_labels`; `rescore` applies it to folds validated before). `report` gives
per-fold rock-vs-background IoU and mIoU over the rock classes present, with their mean, spread
(population standard deviation) and the worst fold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from pipelines.checkpoint_files import CONFIG_FILE
from training.datasets import EVERY_PIXEL, LabelledImage, judged_labels, load_folder, partially_labelled

FIGURES = ("rock_vs_background_iou", "miou_rock_present")
WITH_SETTINGS = "real_holdout_with_settings"  # the held-out figures with another checkpoint's inference settings


def photo_sources(folder: str | Path) -> dict[str, str]:
    """Photo id -> source, from the folder's manifest.json (`subset`), else from the id's letters."""
    manifest = Path(folder) / "manifest.json"
    if manifest.is_file():
        photos = json.loads(manifest.read_text()).get("photos", [])
        found = {p["id"]: p.get("subset", "") for p in photos if "id" in p}
        if found:
            return found
    ids = sorted(p.stem for p in (Path(folder) / "images").iterdir() if p.is_file())
    return {i: i.rstrip("0123456789") for i in ids}


def make_folds(sources: dict[str, str], k: int) -> list[list[str]]:
    """k folds of photo ids, each source dealt round-robin in id order, continuing across sources."""
    if not 2 <= k <= len(sources):
        raise ValueError(f"k must be between 2 and the number of photos ({len(sources)}); got {k}.")
    folds: list[list[str]] = [[] for _ in range(k)]
    position = 0
    for source in sorted(set(sources.values())):
        for photo in sorted(p for p, s in sources.items() if s == source):
            folds[position % k].append(photo)
            position += 1
    return folds


def fold_dir(out: str | Path, index: int) -> Path:
    """Where fold `index`'s run lives."""
    return Path(out) / f"fold{index}"


def run_fold(data: str, out: str, folds: list[list[str]], index: int, train_args: list[str]) -> dict[str, Any] | None:
    """Train fold `index` (or resume it); returns its final metrics, None when interrupted."""
    from training.train import main as train_main
    from training.train import parse_args

    directory = fold_dir(out, index)
    args = ["--out", str(directory), "--data", data, "--holdout", ",".join(folds[index]), "--resume", *train_args]
    if fold_finished(directory):
        print(f"fold {index}: finished before, skipped", flush=True)
        return fold_metrics(directory)
    init = parse_args(args).init
    if init:
        check_init_unseen(Path(init), folds[index])
    print(f"fold {index}: holding out {', '.join(folds[index])}", flush=True)
    train_main(args)
    return fold_metrics(directory)


def checkpoint_config(checkpoint: Path) -> dict[str, Any] | None:
    """A checkpoint's config.json as written (with its training record), or None when absent."""
    path = checkpoint / CONFIG_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def photos_seen(checkpoint: Path) -> set[str] | None:
    """The real photos a checkpoint's weights were trained on, through its whole --init chain;
    None when that cannot be told (no training record, or a data folder no longer here)."""
    from training.datasets import DatasetError, list_pairs

    training = (checkpoint_config(checkpoint) or {}).get("training")
    if not training:
        return None
    recipe = training.get("recipe", {})
    seen: set[str] = set()
    if recipe.get("real_fraction", 0) > 0:
        for folder in recipe.get("data", []):
            try:
                seen |= {name for name, _, _ in list_pairs(folder)}
            except DatasetError:
                return None
        seen -= set(recipe.get("holdout", []))
    parent = training.get("initialised_from", {}).get("path")
    if parent:
        inherited = photos_seen(Path(parent))
        if inherited is None:
            return None
        seen |= inherited
    return seen


def check_init_unseen(init: Path, holdout: list[str]) -> None:
    """Refuse a fold whose starting weights were trained on any of its held-out photos."""
    seen = photos_seen(init)
    if seen is None:
        raise ValueError(
            f"Cannot tell which real photos {init} was trained on (no training record, or its data "
            "folder is not here), so it cannot start a cross-validation fold."
        )
    leaked = sorted(seen & set(holdout))
    if leaked:
        raise ValueError(f"{init} was trained on {', '.join(leaked)}, which this fold holds out; its figures would not be held out.")


def fold_metrics(directory: Path) -> dict[str, Any] | None:
    """A finished fold's held-out figures from its run's last validation, or None; `with_settings`:
    those with another checkpoint's inference settings where `rescore --settings-from` measured them."""
    config = checkpoint_config(directory / "checkpoint")
    if config is None:
        return None
    real = config.get("metrics", {}).get("real_holdout")
    if real is None:
        return None
    training = config.get("training", {})
    other = config["metrics"].get(WITH_SETTINGS)
    return {
        "holdout": training.get("recipe", {}).get("holdout", []),
        "steps": training.get("steps_done"),
        **{figure: real[figure] for figure in FIGURES},
        "per_class": present_classes(real),
        "judging": real.get("judging", EVERY_PIXEL),
        "synthetic_holdout": {figure: config["metrics"].get("synthetic_holdout", {}).get(figure) for figure in FIGURES},
        "with_settings": None
        if other is None
        else {key: other[key] for key in (*FIGURES, "judging", "settings_from", "settings")} | {"per_class": present_classes(other)},
    }


def present_classes(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Class name -> {"iou", "pixels"} for the rock classes an evaluation's photos held."""
    return {
        name: {"iou": row["iou"], "pixels": row["pixels"]}
        for name, row in figures.get("per_class", {}).items()
        if name != "background" and row.get("pixels", 0) > 0
    }


def judged_photos(data: str | Path, names: list[str], partial: set[str]) -> list[LabelledImage]:
    """The photos `names` of `data` with their labels as validation judges them (`partial`: the
    folder's partially labelled photos)."""
    return [judged_labels(item, item.name in partial) for item in load_folder(data, names=set(names))]


def rescore(out: str | Path, data: str | Path, settings_from: str | Path | None = None) -> list[str]:
    """Judge every finished fold's checkpoint again on its held-out photos as validation judges
    them now (`training.datasets.judged_labels`), writing the figures into the checkpoint's
    config.json in place of its run's last validation; with `settings_from` (a checkpoint
    directory), also with that checkpoint's inference settings (`pipelines.model.INFERENCE_SETTINGS`),
    written beside as `real_holdout_with_settings`. Returns the folds rescored."""
    from pipelines.model import load_checkpoint, read_config, update_config
    from training.evaluate import stored_figures
    from training.train import validate_model

    source = None if settings_from is None else read_config(settings_from)
    partial = partially_labelled(data)
    rescored = []
    for checkpoint, holdout in finished_folds(out):
        model = load_checkpoint(checkpoint, engine="torch")
        items = judged_photos(data, holdout, partial)
        metrics = (checkpoint_config(checkpoint) or {}).get("metrics", {})
        metrics["real_holdout"] = stored_figures(validate_model(model, items, [])["real_holdout"])
        if source is not None:
            figures = stored_figures(validate_model(model.with_settings_of(source), items, [])["real_holdout"])
            metrics[WITH_SETTINGS] = figures | {"settings_from": str(settings_from), "settings": source.inference_settings()}
        update_config(checkpoint, {"metrics": metrics})
        rescored.append(checkpoint.parent.name)
    return rescored


def seen(model: str | Path, data: str | Path, k: int = 5) -> dict[str, Any]:
    """Each fold's photos scored, as validation judges them (the service's path, the model's own
    inference settings), by a model that trained on every photo (the recipe's shipped checkpoint):
    what the recipe fits on photos it has seen, per fold. Cross-validated figures measure the same
    folds unseen; the difference is what generalising costs, and these figures are the ceiling the
    recipe's labels and capacity allow it (docs/crossval.md, "What the recipe fits")."""
    from pipelines.model import load_checkpoint
    from training.train import validate_model

    loaded = load_checkpoint(model, engine="torch")
    partial = partially_labelled(data)
    folds: dict[str, Any] = {}
    for index, photos in enumerate(make_folds(photo_sources(data), k)):
        figures = validate_model(loaded, judged_photos(data, photos, partial), [])["real_holdout"]
        folds[f"fold{index}"] = {"photos": photos, **{figure: figures[figure] for figure in FIGURES}}
    summary: dict[str, Any] = {"model": str(model), "folds": folds}
    for figure in FIGURES:
        values = [row[figure] for row in folds.values()]
        summary[figure] = {"mean": statistics.fmean(values), "min": min(values)}
    return summary


def fold_finished(directory: Path) -> bool:
    """Whether the fold run in `directory` has done all the steps of its recipe."""
    training = (checkpoint_config(directory / "checkpoint") or {}).get("training", {})
    return bool(training.get("steps_done")) and training["steps_done"] >= training.get("recipe", {}).get("steps", 0)


def finished_folds(out: str | Path) -> list[tuple[Path, list[str]]]:
    """(checkpoint, held-out photo ids) of every fold under `out` that ran all its steps."""
    return [
        (directory / "checkpoint", list(metrics["holdout"]))
        for directory in sorted(Path(out).glob("fold*"))
        if fold_finished(directory) and (metrics := fold_metrics(directory)) is not None
    ]


def fold_recipe(directory: Path) -> str | None:
    """A fold run's recipe without its held-out photos (the one thing folds differ in), as JSON."""
    config = checkpoint_config(directory / "checkpoint")
    if config is None:
        return None
    recipe = dict(config["training"]["recipe"])
    recipe.pop("holdout", None)
    return json.dumps(recipe, sort_keys=True)


# train.py's options that say how a run goes, not what it trains: never a reason to call two runs two recipes
HOW_IT_RUNS = ("out", "resume", "holdout", "threads", "workers", "val_every", "val_synthetic", "keep_checkpoints")


def same_recipe(recipe_json: str) -> str:
    """A recipe with every option it does not name at its default (options added to train.py
    since a fold ran, at their defaults, do not make it another recipe), without `HOW_IT_RUNS`."""
    from dataclasses import asdict

    from training.train import DEFAULTS

    recipe = {**asdict(DEFAULTS), **json.loads(recipe_json)}
    return json.dumps({k: v for k, v in recipe.items() if k not in HOW_IT_RUNS}, sort_keys=True, default=str)


def one_recipe(recipes: set[str]) -> str | None:
    """The recipe a set of folds shares (as `fold_recipe` gives it), in its oldest spelling when they
    differ only in options added to train.py since (at their defaults); None when they differ."""
    if len({same_recipe(r) for r in recipes}) != 1:
        return None
    return sorted(recipes, key=len)[0]


def report(out: str | Path, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-fold figures with their mean, spread and worst fold, over the folds that ran all their
    steps. `recorded`: an earlier report of the same recipe (a committed docs/crossval-*.json): its
    folds fill in those not run here, so the folds of several sessions on fresh machines add up."""
    from pipelines.model import same_settings

    folds = sorted((p for p in Path(out).glob("fold*") if p.is_dir() and p.name[4:].isdigit()), key=lambda p: int(p.name[4:]))
    rows: dict[str, Any] = {p.name: fold_metrics(p) for p in folds}
    recipes = {r for r in (fold_recipe(p) for p in folds) if r is not None}
    shared = one_recipe(recipes)
    if shared is not None:
        recipes = {shared}
    if recorded:
        earlier = json.dumps(recorded.get("recipe"), sort_keys=True)
        if recipes and {same_recipe(r) for r in recipes} != {same_recipe(earlier)}:
            raise ValueError("The recorded report is of another recipe than the folds under --out; keep them apart.")
        recipes = {earlier}
        for name, row in recorded.get("folds", {}).items():
            mine = rows.get(name)
            if row is not None and (mine is None or (mine.get("steps") or 0) < (row.get("steps") or 0)):
                rows[name] = row
        rows = dict(sorted(rows.items(), key=lambda item: int(item[0][4:])))
    recipe: Any = json.loads(recipes.pop()) if len(recipes) == 1 else "the folds differ in recipe"
    steps = recipe.get("steps", 0) if isinstance(recipe, dict) else 0
    done = {name: row for name, row in rows.items() if row is not None and (row.get("steps") or 0) >= steps}
    judging = {row.get("judging", EVERY_PIXEL) for row in done.values()}
    if len(judging) > 1:
        raise ValueError(
            "The finished folds were judged by different rules (" + "; ".join(sorted(judging)) + "): "
            "run `crossval rescore` on them before comparing."
        )
    summary: dict[str, Any] = {"folds": rows, "complete": len(done), "of": len(rows), **spread(list(done.values()))}
    others = [row["with_settings"] for row in done.values() if row.get("with_settings")]
    if others:
        first = others[0]
        if any(not same_settings(other["settings"], first["settings"]) or other["judging"] != first["judging"] for other in others):
            raise ValueError(
                "The folds were scored with different inference settings or judging rules: rescore them all with one --settings-from."
            )
        summary["with_settings"] = {"complete": len(others), "settings_from": others[0]["settings_from"], **spread(others)}
    summary["recipe"] = recipe
    return summary


def spread(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's mean, spread (population sd), worst and best over the rows that have it,
    unrounded, so that the text gives the same digits for a fold as the table above it."""
    summary = {}
    for figure in FIGURES:
        values = [row[figure] for row in rows]
        if values:
            summary[figure] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "min": min(values), "max": max(values)}
    return summary


def markdown(summary: dict[str, Any]) -> str:
    """The report as a markdown table, with columns for another checkpoint's inference settings
    where `rescore --settings-from` measured them."""
    other = summary.get("with_settings")
    header = "| fold | held-out photos | steps | rock-vs-background IoU | mIoU (rock classes present) |"
    if other:
        header += f" rock-vs-bg IoU, {other['settings_from']} settings | mIoU, those settings |"
    lines = [header, "|---" * header.count(" |") + "|"]
    steps = summary["recipe"].get("steps", 0) if isinstance(summary["recipe"], dict) else 0
    for name, row in summary["folds"].items():
        if row is None:
            lines.append(f"| {name} | | | not finished | |" + (" | |" if other else ""))
            continue
        finished = (row.get("steps") or 0) >= steps
        cells = [", ".join(row["holdout"]), str(row["steps"]) if finished else f"{row['steps']} of {steps}, not finished"]
        cells += [f"{row[f]:.3f}" if finished else f"({row[f]:.3f})" for f in FIGURES]
        if other:
            cells += [f"{row['with_settings'][f]:.3f}" if row.get("with_settings") else "" for f in FIGURES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for figure, label in zip(FIGURES, ("rock-vs-background IoU", "mIoU"), strict=True):
        lines += spread_line(summary, figure, label, summary["complete"], summary["of"])
    if other:
        for figure, label in zip(FIGURES, ("rock-vs-background IoU", "mIoU"), strict=True):
            lines += spread_line(other, figure, f"with {other['settings_from']}'s settings, {label}", other["complete"], summary["of"])
    return "\n".join(lines)


def spread_line(summary: dict[str, Any], figure: str, label: str, complete: int, of: int) -> list[str]:
    """A figure's mean, spread and worst and best fold as a sentence (none where no fold has it)."""
    if figure not in summary:
        return []
    f = summary[figure]
    figures = f"mean {f['mean']:.3f}, spread (sd) {f['std']:.3f}, worst fold {f['min']:.3f}, best {f['max']:.3f}"
    return [f"\n{label}: {figures} ({complete} of {of} folds)"]


def attach(summary: dict[str, Any], model: str | Path, settings_from: str | Path | None, run: str, k: int) -> dict[str, Any]:
    """Give a checkpoint trained on every photo with the folds' recipe the folds' figures as its
    real-photo metrics (`metrics.real_holdout`: the mean over the folds of rock-vs-background IoU,
    mIoU and each rock class's IoU, its pixels summed, and the folds themselves), since no photo is
    left to score it on; with `settings_from`, the figures measured with that checkpoint's
    inference settings (`rescore --settings-from`), and those settings written into the checkpoint
    too. The service then reports a class as validated on real photos with its cross-validated IoU.
    Returns the figures written."""
    from pipelines.model import read_config, same_settings, update_config

    config = checkpoint_config(Path(model))
    recipe = (config or {}).get("training", {}).get("recipe")
    if recipe is None:
        raise ValueError(f"{model} has no training record to compare with the folds' recipe.")
    if recipe.get("holdout"):
        raise ValueError(f"{model} held out {', '.join(recipe['holdout'])}; only a model trained on every photo takes the folds' figures.")
    mine = dict(recipe)
    mine.pop("holdout", None)
    if not isinstance(summary["recipe"], dict) or same_recipe(json.dumps(mine)) != same_recipe(json.dumps(summary["recipe"])):
        raise ValueError(f"{model} was trained with another recipe than the folds'; their figures are not its figures.")
    steps = summary["recipe"].get("steps", 0)
    done = [(name, row) for name, row in summary["folds"].items() if row is not None and (row.get("steps") or 0) >= steps]
    settings = None
    if settings_from is not None:
        settings = read_config(settings_from).inference_settings()
        scored = [(name, row.get("with_settings")) for name, row in done]
        if not done or any(other is None or not same_settings(other["settings"], settings) for _, other in scored):
            raise ValueError(f"Not every finished fold was scored with {settings_from}'s settings: run `rescore --settings-from` first.")
        done = scored
    if not done:
        raise ValueError("No fold has run all its steps.")
    missing = [name for name, row in done if "per_class" not in row]
    if missing:
        raise ValueError(f"{', '.join(missing)} lack per-class figures (a report from before they were kept): rescore them.")
    classes = sorted({c for _, row in done for c in row["per_class"]})
    per_class = {}
    for name in classes:
        rows = [row["per_class"][name] for _, row in done if name in row["per_class"]]
        per_class[name] = {"iou": statistics.fmean(r["iou"] for r in rows), "pixels": sum(r["pixels"] for r in rows), "folds": len(rows)}
    figures = {
        **{figure: statistics.fmean(row[figure] for _, row in done) for figure in FIGURES},
        "per_class": per_class,
        "judging": done[0][1]["judging"],
        "cross_validated": {
            "run": run,
            "complete": len(done),
            "of": k,
            "settings_from": None if settings_from is None else str(settings_from),
            "folds": {name: {"holdout": summary["folds"][name]["holdout"], **{f: row[f] for f in FIGURES}} for name, row in done},
        },
    }
    metrics = dict((config or {}).get("metrics", {}))
    metrics["real_holdout"] = figures
    update_config(model, {"metrics": metrics, **(settings or {})})
    return figures


def main(argv: list[str] | None = None) -> None:
    """`python -m training.crossval folds|run|report|rescore|attach|seen`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, train_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("folds", help="print the folds")
    show.add_argument("--data", required=True)
    show.add_argument("--k", type=int, default=5)
    run = sub.add_parser("run", help="train each fold (or --fold i) with train.py's options after --")
    run.add_argument("--data", required=True)
    run.add_argument("--out", required=True)
    run.add_argument("--k", type=int, default=5)
    run.add_argument("--fold", type=int, action="append", help="only these folds (repeatable)")
    summary = sub.add_parser("report", help="per-fold figures, mean and spread")
    summary.add_argument("--out", required=True)
    summary.add_argument("--markdown", action="store_true")
    summary.add_argument("--json", help="also write the summary here")
    summary.add_argument("--recorded", help="an earlier report of this recipe (docs/crossval-*.json): its folds fill in those not run here")
    again = sub.add_parser("rescore", help="judge the finished folds' checkpoints again as validation judges now")
    again.add_argument("--data", required=True)
    again.add_argument("--out", required=True)
    again.add_argument("--settings-from", help="a checkpoint directory: also score with its inference settings (the shipped model's, say)")
    give = sub.add_parser("attach", help="give the folds' recipe trained on every photo their figures as its real-photo metrics")
    give.add_argument("--out", required=True)
    give.add_argument("--model", required=True, help="the checkpoint directory trained on every photo")
    give.add_argument("--settings-from", help="take the figures measured with this checkpoint's inference settings, and the settings too")
    give.add_argument("--recorded", help="an earlier report of this recipe (docs/crossval-*.json): its folds fill in those not run here")
    give.add_argument("--k", type=int, default=5)
    fit = sub.add_parser("seen", help="each fold's photos scored by a model that trained on every photo: what the recipe fits")
    fit.add_argument("--data", required=True)
    fit.add_argument("--model", required=True, help="a checkpoint directory trained on every photo (the shipped one, say)")
    fit.add_argument("--k", type=int, default=5)
    fit.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.command == "seen":
        fitted = seen(args.model, args.data, args.k)
        for name, row in fitted["folds"].items():
            print(f"{name} ({', '.join(row['photos'])}): rock-vs-background IoU {row['rock_vs_background_iou']:.3f}, "
                  f"mIoU {row['miou_rock_present']:.3f}")  # fmt: skip
        print(" ".join(f"{figure}: mean {fitted[figure]['mean']:.3f}, worst {fitted[figure]['min']:.3f};" for figure in FIGURES))
        if args.json:
            Path(args.json).write_text(json.dumps(fitted, indent=1) + "\n")
        return
    if args.command == "attach":
        try:
            folds_run = report(args.out, json.loads(Path(args.recorded).read_text()) if args.recorded else None)
            figures = attach(folds_run, args.model, args.settings_from, args.out, args.k)
        except ValueError as exc:
            parser.error(str(exc))
        folds = figures["cross_validated"]
        print(f"{args.model}: real-photo figures of {folds['complete']} of {folds['of']} folds: rock-vs-background IoU "
              f"{figures['rock_vs_background_iou']:.3f}, mIoU {figures['miou_rock_present']:.3f}")  # fmt: skip
        for name, row in figures["per_class"].items():
            print(f"  {name}: IoU {row['iou']:.3f} over {row['folds']} fold(s)")
        return
    if args.command == "rescore":
        for name in rescore(args.out, args.data, args.settings_from):
            print(f"{name}: rescored")
        print(markdown(report(args.out)))
        return
    if args.command == "report":
        try:
            result = report(args.out, json.loads(Path(args.recorded).read_text()) if args.recorded else None)
        except ValueError as exc:  # folds of different recipes or judging rules: a sentence, not a traceback
            parser.error(str(exc))
        print(markdown(result) if args.markdown else json.dumps(result, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        return
    folds = make_folds(photo_sources(args.data), args.k)
    if args.command == "folds":
        for index, fold in enumerate(folds):
            print(f"fold {index}: {', '.join(fold)}")
        return
    for index in args.fold or range(args.k):
        run_fold(args.data, args.out, folds, index, train_args)
    print(markdown(report(args.out)))


if __name__ == "__main__":
    main()
