"""The shipped checkpoint's recipe, replayed with one command (`make model`).

    python -m training.recipe --data ../shared/data/real_cores --out var/recipe      # about 5 h on 2 CPU cores
    python -m training.recipe --out var/recipe-smoke --smoke                         # the same chain, 2 steps a stage
    python -m training.recipe --out var/recipe --dry-run                             # print the stages

The stages of models/lithoseg-default/MODEL_CARD.md that lead to the shipped weights, in order,
each a `training.train` run (resumable: a finished stage is skipped, an interrupted one resumes):
three warm-up stages from ImageNet, two runs from stage 3 of which a chosen step each is averaged
(version 5), one fine-tuning run from that soup (version 8), then the inference settings of
versions 9-12 written into its config and the shipped content gate and confidence calibration
carried over. The end is `<out>/model`, a checkpoint the service loads
(`LITHOSEG_MODEL=<out>/model`).

Differences from the history, by design: every stage uses today's code, so the synthetic
generator's table scenes (added at stage 5) are in every stage, and stages 1-5 ignore all
background of the partially labelled photos through `--partial-background all` rather than the
older code they ran on. CPU training is not bit-reproducible; expect the card's figures within a
few hundredths.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipelines.model import read_config, update_config
from training.train import TrainConfig

HOLDOUT = ["cc05", "cc26", "dji0045", "dji0049", "dji0059"]
SHIPPED = Path(__file__).resolve().parents[1] / "models" / "lithoseg-default"
# versions 9-12: inference settings, no training (docs/experiments/: edge refinement, exposure, resolution)
INFERENCE_SETTINGS = {
    "guided_filter": {"kernel_size": 17, "eps": 0.001, "subsample": 2},
    "auto_exposure": {"target": 175.0, "max_gain": 3.0, "percentile": 99.0},
    "scales": [1.4, 1.0, 0.7, 0.5, 0.35, 0.25],
    "version": "12",
}


@dataclass(frozen=True)
class Stage:
    """One training run of the recipe: its name, what it starts from (a stage's name, `name@step`
    for a kept checkpoint, a soup's name, or None for ImageNet) and its options."""

    name: str
    init: str | None
    options: dict[str, Any] = field(default_factory=dict)


COMMON: dict[str, Any] = {"holdout": HOLDOUT, "batch_size": 8, "crop": 256}
ALL = {"partial_background": "all"}  # stages 1-5: every background pixel of the partially labelled photos ignored
STAGES = [
    Stage("default-v1", None, {"steps": 1100, "lr": 1e-3, "real_fraction": 0.4, "val_every": 200, "seed": 0, **ALL}),
    Stage("default-v2", "default-v1", {"steps": 1400, "lr": 5e-4, "real_fraction": 0.55, "val_every": 350, "seed": 1, **ALL}),
    Stage("default-v3", "default-v2", {"steps": 900, "lr": 3e-4, "real_fraction": 0.7, "val_every": 450, "seed": 2, **ALL}),
    Stage("default-v6", "default-v3", {"steps": 2000, "lr": 3e-4, "real_fraction": 0.65, "val_every": 500, "seed": 6,
                                       "keep_checkpoints": True, **ALL}),
    Stage("default-v9", "default-v3", {"steps": 2000, "lr": 3e-4, "real_fraction": 0.65, "val_every": 250, "seed": 6,
                                       "keep_checkpoints": True, **ALL}),
    Stage("default-v17", "version-5", {"steps": 700, "lr": 1.5e-4, "real_fraction": 0.65, "val_every": 700, "seed": 12,
                                        "hue_jitter": 0.05, "partial_edge": 8}),
]  # fmt: skip
# version 5: the uniform soup of these kept checkpoints (chosen on the held-out photos, as the card says)
SOUP = ("version-5", ["default-v6@1000", "default-v9@1750"])


def scaled(stage: Stage, scale: float) -> dict[str, Any]:
    """A stage's options with its step counts scaled (the smoke run: 2 steps, a checkpoint each)."""
    options = dict(stage.options)
    if scale != 1.0:
        options["steps"] = 2
        options["val_every"] = 1
        options["keep_checkpoints"] = True
    return options


def checkpoint(out: Path, reference: str, scale: float, steps_of: dict[str, int]) -> Path:
    """The directory a reference names: a stage's last checkpoint, `stage@step` a kept one, or a soup."""
    if "@" in reference:
        name, step = reference.split("@")
        wanted = int(step) if scale == 1.0 else max(1, round(int(step) / steps_of[name] * 2))
        return out / name / "checkpoints" / f"step-{wanted:06d}"
    if reference == SOUP[0]:
        return out / reference
    return out / reference / "checkpoint"


def finished(run: Path, steps: int) -> bool:
    """Whether a stage's run has done all its steps."""
    config = run / "checkpoint" / "config.json"
    if not config.is_file():
        return False
    return int(json.loads(config.read_text()).get("training", {}).get("steps_done", 0)) >= steps


def configs(out: Path, data: list[str], scale: float, threads: int) -> list[tuple[Stage, TrainConfig]]:
    """Each stage's TrainConfig, in order."""
    steps_of = {stage.name: stage.options["steps"] for stage in STAGES}
    planned = []
    for stage in STAGES:
        options = {**COMMON, **scaled(stage, scale)}
        if scale != 1.0:
            options.update(crop=64, batch_size=2, val_synthetic=1, holdout=[] if not data else HOLDOUT)
        init = str(checkpoint(out, stage.init, scale, steps_of)) if stage.init else None
        config = TrainConfig(out=str(out / stage.name), data=list(data), init=init, resume=True, threads=threads)
        planned.append((stage, replace(config, **options)))
    return planned


def replay(out: Path, data: list[str], scale: float = 1.0, threads: int = 0, dry_run: bool = False) -> Path:
    """Run every stage not yet finished, make the soup, write the final checkpoint to `<out>/model`."""
    from training.soup import make_soup
    from training.train import train

    steps_of = {stage.name: stage.options["steps"] for stage in STAGES}
    for stage, config in configs(out, data, scale, threads):
        if stage.init == SOUP[0] and not (out / SOUP[0]).is_dir() and not dry_run:
            make_soup([str(checkpoint(out, ref, scale, steps_of)) for ref in SOUP[1]], str(out / SOUP[0]), "5")
        if dry_run:
            print(f"{stage.name}: from {stage.init or 'ImageNet'}, {config.steps} steps, lr {config.lr}, options {stage.options}")
            continue
        if finished(Path(config.out), config.steps):
            print(f"{stage.name}: finished before, skipped", flush=True)
            continue
        print(f"{stage.name}: from {stage.init or 'ImageNet'}", flush=True)
        train(config)
    final = out / "model"
    if dry_run:
        print(f"then: {SOUP[0]} = soup of {', '.join(SOUP[1])}; {final} = default-v17 with {INFERENCE_SETTINGS}")
        return final
    shutil.rmtree(final, ignore_errors=True)
    shutil.copytree(out / STAGES[-1].name / "checkpoint", final)
    update_config(final, INFERENCE_SETTINGS)
    gate = SHIPPED / "gate.npz"  # the content gate's reference views: built apart from the segmentation weights
    if gate.is_file():
        shutil.copy2(gate, final / gate.name)
    # version 12's confidence calibration: fitted on cross-validation folds (`training.calibration
    # --folds`), apart from the weights like the gate, so carried over the same way
    table = read_config(SHIPPED).confidence_calibration
    if table:
        update_config(final, {"confidence_calibration": table})
    print(f"the recipe's checkpoint: {final}", flush=True)
    return final


def main(argv: list[str] | None = None) -> None:
    """`python -m training.recipe`: replay the shipped checkpoint's recipe."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for every stage's run and the final checkpoint (<out>/model)")
    parser.add_argument("--data", action="append", default=[], help="labelled photo folder (../shared/data/real_cores)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--smoke", action="store_true", help="two steps a stage on small crops: checks the chain, not the model")
    parser.add_argument("--dry-run", action="store_true", help="print the stages and stop")
    args = parser.parse_args(argv)
    if not args.data and not args.smoke and not args.dry_run:
        parser.error("--data is needed (the labelled photos); --smoke runs on synthetic photos only")
    replay(Path(args.out), args.data, 0.001 if args.smoke else 1.0, args.threads, args.dry_run)


if __name__ == "__main__":
    main()
