"""Train a segmentation checkpoint on labelled folders mixed with synthetic cores.

    python -m training.train --out var/runs/mine --data ../shared/data/real_cores \
        --holdout cc05,cc26,dji0045,dji0059,dji0066 --steps 3000

Each batch draws crops from the labelled folders (minus the held-out photos) with probability
`--real-fraction` and from the synthetic generator otherwise. Validation runs every `--val-every`
steps on the held-out photos and on fixed synthetic seeds that training never uses, with the same
tiling the service uses. The run directory holds `state.pt` (resume with `--resume`) and the
checkpoint (`config.json` + `model.safetensors`) of the last validation. With `--ema D` the
checkpoint and the validation are of an exponential moving average of the weights (decay D per
step, BatchNorm statistics included), which varies far less from one validation to the next than
the raw weights do, so the last checkpoint can be shipped without picking a step.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipelines.classes import BACKGROUND_ID
from pipelines.gate import GateBank
from pipelines.model import LoadedModel, ModelConfig, build_network, normalise, read_config, save_checkpoint, select_device
from pipelines.pretrained import load_imagenet_encoder
from training.datasets import (
    JUDGING,
    DatasetError,
    LabelledImage,
    at_working_size,
    color_jitter,
    ignore_background,
    ignore_fragmented,
    judged_labels,
    load_folder,
    partially_labelled,
    paste_rock,
    random_crop,
    synthetic_item,
)
from training.evaluate import evaluate_items, stored_figures
from training.metrics import IGNORE_ID
from training.synthetic import TRAINING_SEEDS_BELOW

MINUTES_PROBE = (10, 40)  # with --minutes, the steps timed (after the data workers' start) to fix the schedule's length (warm-up is 100)
SYNTHETIC_VALIDATION_SEED = TRAINING_SEEDS_BELOW  # the validation images: the first seeds training never draws


@dataclass
class TrainConfig:
    """A training run's recipe; its defaults are the command line's."""

    out: str
    data: list[str] = field(default_factory=list)
    holdout: list[str] = field(default_factory=list)
    steps: int = 3000
    batch_size: int = 8
    crop: int = 320
    lr: float = 1e-3
    weight_decay: float = 1e-4
    real_fraction: float = 0.4
    crops_per_synthetic: int = 2
    pretrained: str = "imagenet"
    val_every: int = 500
    val_synthetic: int = 8
    seed: int = 0
    workers: int = 1
    threads: int = 0
    resume: bool = False
    init: str | None = None
    ema: float = 0.0
    hue_jitter: float = 0.0
    partial_edge: int = 0
    floor_fraction: float = 0.0  # share of synthetic boxes on a textured floor (hard negatives) instead of a table
    scene_fraction: float = 0.0  # share of synthetic photos with training.scene_extras (checker, header, scale bar, sleeve, tones)
    packing_fraction: float = 0.0  # share of synthetic boxes whose columns' ends are packed with white foam blocks
    cardboard_fraction: float = 0.0  # share of synthetic boxes of worn cardboard: stained walls, flaps open beside them
    copy_paste_fraction: float = 0.0  # share of real crops given another photo's labelled rock (datasets.paste_rock)
    bf16: bool = False  # on a CPU too, the forward pass under bf16 autocast (a CUDA device always uses it)
    partial_background: str = "box"  # on partially labelled photos, background ignored: "box" (near the labels) or "all"
    grey_fraction: float = 0.0  # share of crops turned to grey levels (0: none)
    fragmented: float = 0.0  # ignore labels where the rock outline's density passes this (0: off); see datasets.ignore_fragmented
    rock_loss: float = 0.0  # weight of a Lovasz hinge on rock vs background (0: off)
    hard_pixels: float = 0.0  # cross-entropy over only this hardest share of each batch's labelled pixels (0: all)
    hard_pixel_threshold: float = 0.0  # with hard_pixels, also every pixel whose labelled class is less likely than this
    minutes: float = 0.0  # train for about this long: the step count is set from the rate of the first steps (0: --steps)
    keep_checkpoints: bool = False
    model: dict[str, Any] = field(default_factory=dict)


DEFAULTS = TrainConfig(out="")  # the command line's defaults are the config's


def rock_logit(logits: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) class logits -> (N, H, W) logit of "any rock class" against background (id 0,
    the class table's first): log P(rock) - log P(background)."""
    return torch.logsumexp(logits[:, BACKGROUND_ID + 1 :], dim=1) - logits[:, BACKGROUND_ID]


def rock_target(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) class ids -> 1 for rock, 0 for background, IGNORE_ID kept."""
    return torch.where(masks == IGNORE_ID, masks, (masks != BACKGROUND_ID).to(masks.dtype))


def hard_pixel_cross_entropy(logits: torch.Tensor, masks: torch.Tensor, fraction: float, threshold: float = 0.0) -> torch.Tensor:
    """Cross-entropy averaged over the `fraction` of the labelled pixels (IGNORE_ID left out) with
    the largest loss, the bootstrapped cross-entropy of Wu et al. (2016) that Panoptic-DeepLab
    trains with (`top_k_percent_pixels`): pixels the network already gets right stop pulling the
    gradient, so the hard ones (outlines, cracks, floors taken for rock) weigh more. With a
    `threshold`, every pixel whose labelled class has a probability under it is kept as well, as
    in mmsegmentation's `OHEMPixelSampler` (`fraction` is then its `min_kept`): early in training,
    when nearly every pixel is unsure, that is the whole batch. `fraction` 0 or 1: every labelled
    pixel, as `torch.nn.CrossEntropyLoss`."""
    losses = torch.nn.functional.cross_entropy(logits, masks, ignore_index=IGNORE_ID, reduction="none")
    labelled = losses[masks != IGNORE_ID]
    if labelled.numel() == 0:
        return logits.sum() * 0.0  # nothing labelled: no gradient, and no NaN
    if 0 < fraction < 1:
        kept = max(1, int(labelled.numel() * fraction))
        if threshold > 0:  # P(labelled class) < threshold  <=>  loss > -log(threshold)
            kept = max(kept, int(torch.count_nonzero(labelled > -math.log(threshold))))
        labelled = labelled.topk(kept, sorted=False).values
    return labelled.mean()


class CropStream(IterableDataset):
    """Endless (image, mask) crops: real photos with probability `real_fraction`, else synthetic."""

    def __init__(self, real: list[LabelledImage], config: TrainConfig, start_step: int) -> None:
        self.real, self.config, self.start_step = real, config, start_step

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker = info.id if info else 0
        rng = np.random.default_rng([self.config.seed, self.start_step, worker])
        synthetic_seed = (self.config.seed * 1_000_003 + self.start_step * 7 + worker * 2_000_000) % SYNTHETIC_VALIDATION_SEED
        cached: LabelledImage | None = None
        uses = 0
        while True:
            real = bool(self.real) and rng.random() < self.config.real_fraction
            if real:
                item = self.real[int(rng.integers(len(self.real)))]
            else:
                if cached is None or uses >= self.config.crops_per_synthetic:
                    extras = (
                        self.config.floor_fraction,
                        self.config.scene_fraction,
                        self.config.packing_fraction,
                        self.config.cardboard_fraction,
                    )
                    cached, uses = synthetic_item(synthetic_seed, *extras), 0
                    synthetic_seed = (synthetic_seed + 1) % SYNTHETIC_VALIDATION_SEED
                item, uses = cached, uses + 1
            image, mask = random_crop(rng, item, self.config.crop)
            if real and self.config.copy_paste_fraction and rng.random() < self.config.copy_paste_fraction:
                source = self.real[int(rng.integers(len(self.real)))]  # no draws without the option: older recipes replay
                image, mask = paste_rock((image, mask), random_crop(rng, source, self.config.crop))
            image = color_jitter(rng, image, self.config.hue_jitter, self.config.grey_fraction)
            yield torch.from_numpy(image), torch.from_numpy(mask.astype(np.int64))


def _lr_factor(step: int, total: int, warmup: int = 100) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def fit_working_size(items: list[LabelledImage], max_short_side: int | None) -> list[LabelledImage]:
    """Train at the size the service will segment at: photos over the checkpoint's `max_short_side`
    (one inherited through --init, say) are scaled down to it, as the service scales them down."""
    fitted = [at_working_size(item, max_short_side) for item in items]
    resized = [a.name for a, b in zip(items, fitted, strict=True) if a is not b]
    if resized:
        print(
            f"{len(resized)} training photo(s) scaled down to a shorter side of "
            f"{max_short_side} px, as the service will segment them: {', '.join(resized[:10])}",
            flush=True,
        )
    return fitted


def _duration(seconds: float) -> str:
    """12 s, 7 min, 2 h 05 min."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def validate(
    network: torch.nn.Module,
    model_config: ModelConfig,
    device: torch.device,
    real_val: list[LabelledImage],
    synthetic_val: list[LabelledImage],
) -> dict[str, Any]:
    """Score the network on held-out images as the service segments them."""
    network.eval()
    metrics = validate_model(LoadedModel(model_config, network, device), real_val, synthetic_val)
    network.train()
    return metrics


def validate_model(model: LoadedModel, real_val: list[LabelledImage], synthetic_val: list[LabelledImage]) -> dict[str, Any]:
    """A loaded model's figures on held-out real photos (judged by `JUDGING`) and synthetic images."""
    metrics: dict[str, Any] = {}
    if real_val:
        metrics["real_holdout"] = evaluate_items(model, real_val, model.config.class_table) | {"judging": JUDGING}
    if synthetic_val:
        metrics["synthetic_holdout"] = evaluate_items(model, synthetic_val, model.config.class_table)
    return metrics


def _summary(metrics: dict[str, Any]) -> str:
    parts = []
    for split, report in metrics.items():
        parts.append(
            f"{split}: mIoU(rock present)={report['miou_rock_present']:.3f} "
            f"rock-vs-bg IoU={report['rock_vs_background_iou']:.3f} acc={report['pixel_accuracy']:.3f}"
        )
    return " | ".join(parts)


def trusted_labels(item: LabelledImage, partial: bool, config: TrainConfig) -> LabelledImage:
    """A training photo with the labels the loss should not trust marked ignored: background of a
    partially labelled photo (near its labels, or all of it) and, with `fragmented`, busy outlines."""
    if partial:
        item = ignore_background(item, edge=config.partial_edge, everywhere=config.partial_background == "all")
    return ignore_fragmented(item, config.fragmented) if config.fragmented else item


def train(config: TrainConfig) -> Path:
    """Run one training recipe to a checkpoint (resumable); returns the checkpoint's directory."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = select_device()
    holdout = set(config.holdout)
    real_train: list[LabelledImage] = []
    real_val: list[LabelledImage] = []
    for directory in config.data:
        partial = partially_labelled(directory)
        for item in load_folder(directory):
            if item.name in holdout:
                real_val.append(judged_labels(item, item.name in partial))
            else:
                real_train.append(trusted_labels(item, item.name in partial, config))
    unknown = sorted(holdout - {item.name for item in real_train + real_val})
    if unknown:
        raise DatasetError(
            f"--holdout names {', '.join(unknown)}, which no --data folder holds; a "
            "misspelt id would leave the photo meant to be held out in training."
        )
    synthetic_val = [synthetic_item(SYNTHETIC_VALIDATION_SEED + i) for i in range(config.val_synthetic)]

    provenance: dict[str, Any] = {}
    if config.init:
        from safetensors.torch import load_file

        # the network the init checkpoint describes (architecture, encoder, classes, tiles), with
        # --model-json's overrides; not its version, metrics or training record
        initial = read_config(config.init)
        inherited = {k: v for k, v in initial.to_dict().items() if k not in ("version", "training", "metrics", "extra")}
        model_config = ModelConfig(**(inherited | config.model))
        network = build_network(model_config)
        network.load_state_dict(load_file(str(Path(config.init) / "model.safetensors")))
        # the init path (e.g. models/lithoseg-default) may later hold another version: name it
        provenance["initialised_from"] = {"path": config.init, "name": initial.name, "version": initial.version}
    else:
        model_config = ModelConfig(**config.model)
        network = build_network(model_config)
        if config.pretrained == "imagenet":
            load_imagenet_encoder(network, model_config.encoder)
    real_train = fit_working_size(real_train, model_config.max_short_side)
    network = network.to(device)
    if device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks memory_format
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config.steps))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    averaged = (
        torch.optim.swa_utils.AveragedModel(network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema), use_buffers=True)
        if config.ema
        else None
    )
    import segmentation_models_pytorch as smp

    dice = smp.losses.DiceLoss("multiclass", ignore_index=IGNORE_ID)
    rock_lovasz = smp.losses.LovaszLoss("binary", ignore_index=IGNORE_ID) if config.rock_loss else None

    step, history = 0, []
    state_path = out / "state.pt"
    if config.resume and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=False)
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, history = state["step"], state["history"]
        if averaged is not None and "averaged" in state:
            averaged.load_state_dict(state["averaged"])
        print(f"resumed from step {step}", flush=True)

    loader = DataLoader(
        CropStream(real_train, config, step),
        batch_size=config.batch_size,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
    )
    network.train()
    started, seen, running_loss = time.time(), 0, 0.0
    probe_began = started
    metrics: dict[str, Any] = {}
    for images, masks in loader:
        if step >= config.steps:
            break
        x = normalise(images, model_config, device)
        y = masks.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" or config.bf16):
            logits = network(x)
        logits = logits.float()
        loss = hard_pixel_cross_entropy(logits, y, config.hard_pixels, config.hard_pixel_threshold) + dice(logits, y)
        if rock_lovasz is not None:  # the rock-vs-background IoU itself, through its Lovasz extension
            loss = loss + config.rock_loss * rock_lovasz(rock_logit(logits), rock_target(y))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if averaged is not None:
            averaged.update_parameters(network)
        step += 1
        seen += len(images)
        running_loss = 0.95 * running_loss + 0.05 * loss.item() if step > 1 else loss.item()
        if config.minutes and step == MINUTES_PROBE[0]:
            probe_began = time.time()
        if config.minutes and step == MINUTES_PROBE[1]:  # the schedule's length from the steady rate (start-up costs left out)
            per_step = (time.time() - probe_began) / (MINUTES_PROBE[1] - MINUTES_PROBE[0])
            config.steps = max(step + 1, int(step + (config.minutes * 60 - (time.time() - started)) / per_step))
            print(f"--minutes {config.minutes:g}: {per_step:.3f} s a step, so {config.steps} steps", flush=True)
        if step % 10 == 0 or step == 1:
            rate = seen / (time.time() - started)
            left = (config.steps - step) * config.batch_size / rate  # seconds, at this session's rate (validation aside)
            print(
                f"step {step}/{config.steps} loss {running_loss:.4f} lr "
                f"{scheduler.get_last_lr()[0]:.2e} {rate:.1f} crops/s, about {_duration(left)} left",
                flush=True,
            )
        if step % config.val_every == 0 or step == config.steps:
            shipped = averaged.module if averaged is not None else network
            metrics = validate(shipped, model_config, device, real_val, synthetic_val)
            history.append(
                {
                    "step": step,
                    "loss": running_loss,
                    **{k: {m: v[m] for m in ("miou_rock_present", "rock_vs_background_iou", "pixel_accuracy")} for k, v in metrics.items()},
                }
            )
            print(f"validation at step {step}: {_summary(metrics)}", flush=True)
            _write(out, config, model_config, shipped, metrics, step, history, provenance)
            state = {
                "network": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": step,
                "history": history,
            }
            if averaged is not None:
                state["averaged"] = averaged.state_dict()
            torch.save(state, state_path)
    return out


def _write(
    out: Path,
    config: TrainConfig,
    model_config: ModelConfig,
    network: torch.nn.Module,
    metrics: dict[str, Any],
    step: int,
    history: list[dict[str, Any]],
    provenance: dict[str, Any],
) -> None:
    model_config.training = {
        "recipe": {k: v for k, v in vars(config).items() if k not in ("out", "resume")},
        "steps_done": step,
        "history": history,
        "command": " ".join(["python -m training.train", *sys.argv[1:]]),
        "synthetic_validation_seed": SYNTHETIC_VALIDATION_SEED,
        **provenance,
    }
    model_config.metrics = {k: stored_figures(report) for k, report in metrics.items()}
    written = [save_checkpoint(out / "checkpoint", model_config, network)]
    if config.keep_checkpoints:
        written.append(save_checkpoint(out / "checkpoints" / f"step-{step:06d}", model_config, network))
    if config.init:  # the content gate of the checkpoint it started from comes with it
        for directory in written:
            GateBank.carry(config.init, directory)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """`python -m training.train`'s options as a TrainConfig."""
    parser = argparse.ArgumentParser(description="Train a lithoseg segmentation checkpoint.")
    parser.add_argument("--out", required=True, help="run directory (state.pt, checkpoint/)")
    parser.add_argument("--data", action="append", default=[], help="labelled folder (images/, masks/); repeatable")
    parser.add_argument("--holdout", default="", help="comma-separated photo ids kept out of training for validation")
    parser.add_argument("--steps", type=int, default=DEFAULTS.steps)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--crop", type=int, default=DEFAULTS.crop)
    parser.add_argument("--lr", type=float, default=DEFAULTS.lr)
    parser.add_argument("--real-fraction", type=float, default=DEFAULTS.real_fraction)
    parser.add_argument("--pretrained", choices=["imagenet", "none"], default=DEFAULTS.pretrained)
    parser.add_argument("--init", default=DEFAULTS.init, help="start from this checkpoint directory's weights")
    parser.add_argument("--val-every", type=int, default=DEFAULTS.val_every)
    parser.add_argument("--val-synthetic", type=int, default=DEFAULTS.val_synthetic)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--workers", type=int, default=DEFAULTS.workers)
    parser.add_argument("--threads", type=int, default=DEFAULTS.threads, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--model-json", default="{}", help="ModelConfig overrides as JSON, e.g. '{\"tile_size\": 256}'")
    parser.add_argument(
        "--ema",
        type=float,
        default=DEFAULTS.ema,
        help="validate and save an exponential moving average of the weights with this decay per step (e.g. 0.998; 0: the raw weights)",
    )
    parser.add_argument(
        "--hue-jitter",
        type=float,
        default=DEFAULTS.hue_jitter,
        help="random hue shift of up to this fraction of the colour wheel (e.g. 0.05), with a saturation gain of 1 ± twice it",
    )
    parser.add_argument(
        "--grey-fraction",
        type=float,
        default=DEFAULTS.grey_fraction,
        help="turn this share of the training crops to grey levels (black-and-white photos; 0: none)",
    )
    parser.add_argument(
        "--fragmented",
        type=float,
        default=DEFAULTS.fragmented,
        help=(
            "ignore training labels where over this fraction of a 15 px square lies on a rock/background boundary (speckled labels; 0: off)"
        ),
    )
    parser.add_argument(
        "--floor-fraction",
        type=float,
        default=DEFAULTS.floor_fraction,
        help="share of the synthetic boxes placed on a textured floor (terrazzo, granite, concrete, gravel, carpet, tiles)",
    )
    parser.add_argument(
        "--scene-fraction",
        type=float,
        default=DEFAULTS.scene_fraction,
        help="share of the synthetic photos with a colour checker, header, scale bar, sleeve or dark/white/wet/dry core",
    )
    parser.add_argument(
        "--packing-fraction",
        type=float,
        default=DEFAULTS.packing_fraction,
        help="share of the synthetic boxes whose columns' ends are packed with white foam blocks across the slot",
    )
    parser.add_argument(
        "--cardboard-fraction",
        type=float,
        default=DEFAULTS.cardboard_fraction,
        help="share of the synthetic boxes of worn cardboard: walls and dividers stained, flaps open beside the box",
    )
    parser.add_argument(
        "--copy-paste-fraction",
        type=float,
        default=DEFAULTS.copy_paste_fraction,
        help="share of the real crops onto which the labelled rock of another real crop is pasted (copy-paste augmentation)",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="run the forward pass under bf16 autocast on a CPU too (1.5x faster a step where the CPU has AMX; CUDA always does)",
    )
    parser.add_argument(
        "--partial-background",
        choices=["box", "all"],
        default=DEFAULTS.partial_background,
        help="on partially labelled photos, ignore background near the labels (box) or all of it (all, as versions 1-5 trained)",
    )
    parser.add_argument(
        "--partial-edge",
        type=int,
        default=DEFAULTS.partial_edge,
        help="on photos flagged partial, keep background within this many pixels of labelled rock (0: ignore all background near the rock)",
    )
    parser.add_argument(
        "--rock-loss",
        type=float,
        default=DEFAULTS.rock_loss,
        help="add this weight times a binary Lovasz hinge on rock vs background, the IoU the service is judged on (0: off)",
    )
    parser.add_argument(
        "--hard-pixels",
        type=float,
        default=DEFAULTS.hard_pixels,
        help="cross-entropy over only this hardest share of a batch's labelled pixels, e.g. 0.25 (bootstrapped; 0: every pixel)",
    )
    parser.add_argument(
        "--hard-pixel-threshold",
        type=float,
        default=DEFAULTS.hard_pixel_threshold,
        help="with --hard-pixels, also keep every pixel whose labelled class has a probability under this, e.g. 0.7 (OHEM)",
    )
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="also keep every validation's checkpoint as checkpoints/step-NNNNNN/ (checkpoint/ is always the latest)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=DEFAULTS.minutes,
        help="train for about this many minutes (validation aside): --steps is set from the rate of the first steps",
    )
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    return TrainConfig(
        out=args.out,
        data=args.data,
        holdout=[h for h in args.holdout.split(",") if h],
        steps=args.steps,
        batch_size=args.batch_size,
        crop=args.crop,
        lr=args.lr,
        real_fraction=args.real_fraction,
        pretrained=args.pretrained,
        init=args.init,
        val_every=args.val_every,
        val_synthetic=args.val_synthetic,
        seed=args.seed,
        workers=args.workers,
        threads=args.threads,
        resume=args.resume,
        ema=args.ema,
        hue_jitter=args.hue_jitter,
        partial_edge=args.partial_edge,
        partial_background=args.partial_background,
        floor_fraction=args.floor_fraction,
        scene_fraction=args.scene_fraction,
        packing_fraction=args.packing_fraction,
        cardboard_fraction=args.cardboard_fraction,
        copy_paste_fraction=args.copy_paste_fraction,
        bf16=args.bf16,
        fragmented=args.fragmented,
        grey_fraction=args.grey_fraction,
        rock_loss=args.rock_loss,
        hard_pixels=args.hard_pixels,
        hard_pixel_threshold=args.hard_pixel_threshold,
        keep_checkpoints=args.keep_checkpoints,
        model=json.loads(args.model_json),
        minutes=args.minutes,
    )


def main(argv: list[str] | None = None) -> None:
    """`python -m training.train`."""
    try:
        out = train(parse_args(argv))
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}") from exc
    print(f"checkpoint written to {out / 'checkpoint'}")


if __name__ == "__main__":
    main()
