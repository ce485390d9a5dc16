"""The shipped checkpoint's recipe, replayed with one command (`make model`).

    python -m training.recipe --data ../shared/data/real_cores --out var/recipe      # about 1 h on 2 CPU cores
    python -m training.recipe --out var/recipe-smoke --smoke                         # 2 steps on synthetic photos
    python -m training.recipe --out var/recipe --dry-run                             # print the run

The shipped weights (version 13, models/lithoseg-default/MODEL_CARD.md) are cross-validated recipe
r4 (docs/crossval.md) trained once on every labelled photo: one `training.train` run from ImageNet
(resumable: a finished run is skipped, an interrupted one resumes). Then what does not come from
these weights is carried over from the shipped checkpoint into `<out>/model`: the inference
settings the folds were scored with
(a background bias among them, if one is set), the content gate (`gate.npz`,
embeddings of the fixed ImageNet encoder), the confidence calibration (none since the five folds: docs/calibration.md) and r4's
cross-validated figures (`metrics.real_holdout`, which the service's per-class validation reads).
To measure those again rather than carry them: `crossval run` the five folds with `R4`'s options,
then `crossval rescore --settings-from`, `crossval attach` and `calibration --folds
--settings-from` (docs/crossval.md). Versions 1-12 came from a chain of stages chosen on five
fixed held-out photos (the card's history; `git show c55212f:training/recipe.py` replays it).

CPU training is not bit-reproducible; expect the card's figures within a few hundredths.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipelines.model import INFERENCE_SETTINGS, read_config, update_config
from training.train import TrainConfig

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "lithoseg-default"
VERSION = "13"
# recipe r4: what every fold of the cross-validation and the shipped run train with
R4: dict[str, Any] = {
    "steps": 2400,
    "batch_size": 8,
    "crop": 256,
    "lr": 1e-3,
    "real_fraction": 0.6,
    "hue_jitter": 0.05,
    "partial_edge": 8,
    "ema": 0.998,
    "seed": 0,
    "floor_fraction": 0.3,
    "scene_fraction": 0.3,
    "packing_fraction": 0.3,
}
RUN: dict[str, Any] = {"val_every": 600}  # how the run goes (not part of the recipe): a resumable state every 600 steps


def plan(out: Path, data: list[str], smoke: bool, threads: int) -> TrainConfig:
    """The shipped run's TrainConfig (the smoke run: 2 steps of small crops, no real photos needed)."""
    config = TrainConfig(out=str(out / "r4-all"), data=list(data), resume=True, threads=threads)
    config = replace(config, **R4, **RUN)
    if smoke:
        config = replace(config, steps=2, val_every=1, crop=64, batch_size=2, val_synthetic=1)
    return config


def carried(shipped: Path) -> dict[str, Any]:
    """What the final checkpoint takes from the shipped one: the inference settings, the confidence
    calibration and the cross-validated real-photo figures (none of them is a property of these
    particular weights, all of the recipe), and the version."""
    config = json.loads((shipped / "config.json").read_text())
    keep = {key: config[key] for key in (*INFERENCE_SETTINGS, "confidence_calibration", "engine") if key in config}
    real = config.get("metrics", {}).get("real_holdout")
    return keep | {"version": VERSION, "real_holdout": real}


def replay(out: Path, data: list[str], smoke: bool = False, threads: int = 0, dry_run: bool = False) -> Path:
    """Train the shipped run (unless finished), then write `<out>/model` with what is carried over."""
    from training.train import train

    config = plan(out, data, smoke, threads)
    final = out / "model"
    if dry_run:
        print(f"r4-all: from ImageNet on every photo of {', '.join(data) or 'no folder'}, options {R4}")
        print(f"then: {final} = its checkpoint with {sorted(carried(SHIPPED))} of {SHIPPED}")
        return final
    checkpoint = Path(config.out) / "checkpoint"
    done = read_config(checkpoint).training.get("steps_done", 0) if checkpoint.is_dir() else 0
    if done >= config.steps:
        print("r4-all: finished before, skipped", flush=True)
    else:
        train(config)
    shutil.rmtree(final, ignore_errors=True)
    shutil.copytree(checkpoint, final)
    settings = carried(SHIPPED)
    real = settings.pop("real_holdout")
    metrics = read_config(final).metrics
    update_config(final, settings | {"metrics": metrics | ({"real_holdout": real} if real else {})})
    gate = SHIPPED / "gate.npz"  # the content gate's reference views: built apart from the segmentation weights
    if gate.is_file():
        shutil.copy2(gate, final / gate.name)
    print(f"the recipe's checkpoint: {final}", flush=True)
    return final


def main(argv: list[str] | None = None) -> None:
    """`python -m training.recipe`: replay the shipped checkpoint's recipe."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the run and the final checkpoint (<out>/model)")
    parser.add_argument("--data", action="append", default=[], help="labelled photo folder (../shared/data/real_cores)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--smoke", action="store_true", help="two steps on small crops: checks the chain, not the model")
    parser.add_argument("--dry-run", action="store_true", help="print the run and stop")
    args = parser.parse_args(argv)
    if not args.data and not args.smoke and not args.dry_run:
        parser.error("--data is needed (the labelled photos); --smoke runs on synthetic photos only")
    replay(Path(args.out), args.data, args.smoke, args.threads, args.dry_run)


if __name__ == "__main__":
    main()
