"""Cost of the candidate smp architectures with the shipped encoder: parameters, multiply-adds and
forward latency per tile, and, when training runs are named, their held-out accuracy beside it.

    $(scripts/venv.sh)/bin/python -m bench.architectures [--device cpu|cuda] [--tile 512] \
        [--repeats 20] [--runs var/runs/arch-Unet var/runs/arch-FPN ...]

Every architecture is built with the shipped checkpoint's encoder and class table (random
weights: latency does not depend on them). Timings are interleaved, one forward of each
architecture per round, so that a noisy machine slows them all alike; the table prints medians and
the ratio to the shipped architecture measured in the same run. On CUDA the forward runs as the
service's does (fp16 autocast, channels-last). `--runs` reads each run directory's
`checkpoint/config.json` and adds its last validation figures to the row of its architecture.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from pipelines.model import ModelConfig, build_network, read_config

SHIPPED = Path("models/lithoseg-default")
# smp architectures that take a timm-universal encoder at output stride 32 (or their own dilation)
CANDIDATES = ("Unet", "FPN", "DeepLabV3Plus", "Linknet", "MAnet", "PAN")


def candidate_config(base: ModelConfig, architecture: str) -> ModelConfig:
    """The shipped checkpoint's config with another decoder: the shipped one keeps its own
    arguments, the others take smp's defaults."""
    kwargs = base.architecture_kwargs if architecture == base.architecture else {}
    return ModelConfig.from_dict(
        base.to_dict() | {"architecture": architecture, "architecture_kwargs": kwargs, "training": {}, "metrics": {}}
    )


def multiply_adds(network: torch.nn.Module, tile: int) -> float:
    """Multiply-accumulates of one forward pass on a 1 × 3 × tile × tile input (FLOPs / 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 3, tile, tile))
    return counter.get_total_flops() / 2


def timed_rounds(networks: dict[str, torch.nn.Module], batch: torch.Tensor, repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Forward times in milliseconds, `repeats` rounds of one forward per network."""
    autocast = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    times: dict[str, list[float]] = {name: [] for name in networks}
    with torch.inference_mode(), autocast:
        for network in networks.values():  # warm-up: allocator, cuDNN autotuning
            network(batch)
        for _ in range(repeats):
            for name, network in networks.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
                network(batch)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append((time.perf_counter() - started) * 1000)
    return times


def run_figures(run: Path) -> tuple[str, dict[str, Any]]:
    config = read_config(run / "checkpoint")
    return config.architecture, config.metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--architectures", default=",".join(CANDIDATES))
    parser.add_argument("--runs", nargs="*", default=[], type=Path, help="training run directories whose validation figures to show")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    base = read_config(SHIPPED)
    names = args.architectures.split(",")
    networks: dict[str, torch.nn.Module] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        network = build_network(candidate_config(base, name)).eval()
        rows[name] = {
            "parameters_m": sum(p.numel() for p in network.parameters()) / 1e6,
            "gmacs_per_tile": multiply_adds(network, args.tile) / 1e9,
        }
        if device.type == "cuda":
            network = network.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks memory_format
        networks[name] = network.to(device)
    batch = torch.rand(args.batch_size, 3, args.tile, args.tile, device=device)
    if device.type == "cuda":
        batch = batch.contiguous(memory_format=torch.channels_last)
    times = timed_rounds(networks, batch, args.repeats, device)
    reference = statistics.median(times[base.architecture]) if base.architecture in times else None
    for name in names:
        rows[name]["ms_per_batch"] = statistics.median(times[name])
        rows[name]["ratio_to_shipped"] = rows[name]["ms_per_batch"] / reference if reference else None
    for run in args.runs:
        architecture, metrics = run_figures(run)
        if architecture in rows:
            rows[architecture]["run"] = str(run)
            for split in ("real_holdout", "synthetic_holdout"):
                if split in metrics:
                    rows[architecture][split] = {k: metrics[split][k] for k in ("rock_vs_background_iou", "miou_rock_present")}
    print(f"{device} · {args.tile}² tiles · batch {args.batch_size} · median of {args.repeats} interleaved rounds · encoder {base.encoder}")
    print(
        f"{'architecture':<14}{'params M':>9}{'GMAC/tile':>11}{'ms/batch':>10}{'× shipped':>11}   real rock-vs-bg / mIoU · synthetic mIoU"
    )
    for name in names:
        row = rows[name]
        ratio = f"{row['ratio_to_shipped']:.2f}" if row["ratio_to_shipped"] else "-"
        real, synthetic = row.get("real_holdout"), row.get("synthetic_holdout")
        accuracy = f"{real['rock_vs_background_iou']:.3f} / {real['miou_rock_present']:.3f}" if real else "-"
        accuracy += f" · {synthetic['miou_rock_present']:.3f}" if synthetic else ""
        print(f"{name:<14}{row['parameters_m']:>9.2f}{row['gmacs_per_tile']:>11.2f}{row['ms_per_batch']:>10.1f}{ratio:>11}   {accuracy}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"device": str(device), "tile": args.tile, "batch_size": args.batch_size, "rows": rows}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
