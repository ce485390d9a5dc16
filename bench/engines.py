"""The bare model through every engine that runs here: tiles per second, share of the machine's
peak, and parity with PyTorch eager (FP32) on real and synthetic tiles, measured in one run.

    python -m bench.engines [--seconds 8] [--json var/bench/engines.json]

On a CPU: `torch` (eager, the reference), `onnxruntime`, `onnxruntime-int8` (when the checkpoint
has an accepted INT8 export), each as one pass on all cores and as two concurrent passes sharing
them (the Segmenter's configuration), batch 1. On CUDA: `torch` in FP32 (the reference), `torch`
(bf16 autocast, channels-last), `torch-compile` (bf16, CUDA graphs) and `tensorrt` (ONNX Runtime's
TensorRT provider, fp16) at batch sizes 1 to 64.

FLOPs per tile come from PyTorch's FLOP counter on the network (a multiply-add counts 2). The CPU
peak is cores × clock × FP32 FLOPs per cycle from the vector units /proc/cpuinfo names (AVX-512:
2 FMA units × 16 lanes × 2; AVX2: 2 × 8 × 2); the GPU peak is the datasheet's dense bf16 (H100/H200:
989 TFLOP/s), an upper bound that no convolution network reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.engines import Engine, argmax_agreement, build_engine, parity_tiles, torch_engine
from pipelines.model import LoadedModel, load_checkpoint, normalise

REPO_ROOT = Path(__file__).resolve().parents[1]  # (not deployments.settings: this runs where only torch is installed)
DEFAULT_MODEL = REPO_ROOT / "models" / "lithoseg-default"
GPU_BATCHES = (1, 16, 64)
GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "T4": 65.0}


def flops_per_tile(network: torch.nn.Module, tile_size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    example = torch.zeros(1, 3, tile_size, tile_size, device=next(network.parameters()).device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(example)
    return float(counter.get_total_flops())


def cpu_peak_gflops() -> tuple[float, str]:
    """cores × max clock × FP32 FLOPs per cycle per core, from /proc/cpuinfo and cpufreq."""
    text = Path("/proc/cpuinfo").read_text()
    flags = set(re.search(r"^flags\s*:\s*(.*)$", text, re.M).group(1).split()) if "flags" in text else set()  # type: ignore[union-attr]
    amd_zen4 = "AuthenticAMD" in text and re.search(r"^cpu family\s*:\s*25$", text, re.M)
    if "avx512f" in flags and amd_zen4:
        per_cycle, unit = 32, "AVX-512 on AMD Zen 4 (512-bit ops in two 256-bit halves: 2 FMA x 8 lanes x 2)"
    elif "avx512f" in flags:
        per_cycle, unit = 64, "AVX-512 (2 FMA x 16 lanes x 2)"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, unit = 32, "AVX2 (2 FMA x 8 lanes x 2)"
    else:
        per_cycle, unit = 8, "SSE"
    clock_ghz = None
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if cpufreq.is_file():
        clock_ghz = int(cpufreq.read_text()) / 1e6
    if clock_ghz is None:
        mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
        clock_ghz = max(mhz) / 1000 if mhz else 2.5
    cores = len(os.sched_getaffinity(0))
    return cores * clock_ghz * per_cycle, f"{cores} cores x {clock_ghz:.2f} GHz x {per_cycle} FLOP/cycle, {unit}"


def gpu_peak_gflops() -> tuple[float, str]:
    name = torch.cuda.get_device_name(0)
    for key, tflops in GPU_PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1000, f"{name}: datasheet dense bf16 {tflops:g} TFLOP/s"
    return float("nan"), f"{name}: peak unknown"


def real_tiles(tile_size: int, count: int = 4) -> list[np.ndarray]:
    """Tiles of the real core photo shipped with the tests (and of the project's data if present)."""
    from PIL import Image

    photos = [REPO_ROOT / "tests" / "data" / "cc05.jpg"]
    shared = REPO_ROOT.parent / "shared" / "data" / "real_cores" / "images"
    if shared.is_dir():
        photos += sorted(shared.glob("*.jpg"))[:3]
    tiles = []
    for path in photos:
        image = np.asarray(Image.open(path).convert("RGB"))
        if image.shape[0] < tile_size or image.shape[1] < tile_size:
            image = np.asarray(Image.fromarray(image).resize((max(tile_size, image.shape[1]), max(tile_size, image.shape[0]))))
        tiles.append(np.ascontiguousarray(image[:tile_size, :tile_size]))
    return tiles[:count]


def rate(engine: Engine, batch: torch.Tensor, seconds: float, streams: int = 1) -> float:
    """Tiles per second with `streams` threads each running batches back to back."""
    count = [0] * streams
    with torch.inference_mode():
        for _ in range(2):  # warm-up (lazy initialisation, cuDNN's algorithm search, graph capture)
            engine(batch)
        if batch.is_cuda:
            torch.cuda.synchronize()
    stop = time.perf_counter() + seconds

    def loop(index: int) -> None:
        with torch.inference_mode():
            while time.perf_counter() < stop:
                engine(batch)
                if batch.is_cuda:
                    torch.cuda.synchronize()
                count[index] += batch.shape[0]

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(streams)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(count) / (time.perf_counter() - began)


def parity(reference: Engine, engine: Engine, tiles: list[np.ndarray], prepare: Any) -> float:
    with torch.inference_mode():
        return float(
            np.mean([argmax_agreement(reference(prepare(t[None])).float().cpu(), engine(prepare(t[None])).float().cpu()) for t in tiles])
        )


def measure(checkpoint: Path, seconds: float, engines: list[str] | None = None) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    model: LoadedModel = load_checkpoint(checkpoint, device, engine="torch")
    config = model.config
    tile = config.tile_size

    def prepare(tiles: np.ndarray) -> torch.Tensor:
        return normalise(torch.tensor(tiles), config, device)  # a copy: the real tiles are read-only views

    flops = flops_per_tile(model.network.float(), tile)
    peak, peak_how = gpu_peak_gflops() if cuda else cpu_peak_gflops()
    fp32_reference = Engine("torch-fp32", lambda b: model.network(b.float()))
    tiles = {"real": real_tiles(tile), "synthetic": parity_tiles(tile)}
    names = engines or (
        ["torch-bf16", "torch-fp16", "torch-compile", "tensorrt"]
        if cuda
        else ["torch", "onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16"]
    )
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if cuda else f"{threads} CPU cores",
        "gflop_per_tile": round(flops / 1e9, 2),
        "peak_gflops": round(peak, 1),
        "peak_from": peak_how,
        "engines": {},
    }
    if cuda:
        names = ["torch-fp32", *names]
    for name in names:
        if name == "torch-fp32":
            engine = fp32_reference
        elif name == "torch" and not cuda:
            engine = torch_engine(model.network, device)
        else:
            engine = build_engine(
                name, model.network, device, checkpoint, tile, max(1, threads // (1 if cuda else 2)), lambda t: prepare(t)
            )
            if engine.name != name:
                results["engines"][name] = {"unavailable": engine.fallback_reason}
                print(f"{name}: unavailable ({engine.fallback_reason})", flush=True)
                continue
        row: dict[str, Any] = {"parity": {kind: round(parity(fp32_reference, engine, group, prepare), 5) for kind, group in tiles.items()}}
        if cuda:
            row["tiles_per_s"] = {
                str(b): round(rate(engine, prepare(np.stack([tiles["synthetic"][0]] * b)), seconds), 1) for b in GPU_BATCHES
            }
            best = max(row["tiles_per_s"].values())
        else:
            batch = prepare(tiles["synthetic"][0][None])
            if name.startswith(("onnxruntime", "openvino")):  # built per stream count: their threads are set when built
                two = build_engine(name, model.network, device, checkpoint, tile, max(1, threads // 2), lambda t: prepare(t))
                one = build_engine(name, model.network, device, checkpoint, tile, threads, lambda t: prepare(t))
            else:
                one = two = engine
            torch.set_num_threads(threads)
            row["tiles_per_s_one_pass"] = round(rate(one, batch, seconds), 3)
            torch.set_num_threads(max(1, threads // 2))
            row["tiles_per_s_two_passes"] = round(rate(two, batch, seconds, streams=2), 3)
            torch.set_num_threads(threads)
            best = max(row["tiles_per_s_one_pass"], row["tiles_per_s_two_passes"])
        row["best_tiles_per_s"] = best
        row["share_of_peak"] = round(best * flops / 1e9 / peak, 4) if peak == peak else None
        results["engines"][name] = row
        print(f"{name}: {json.dumps(row)}", flush=True)
    base = results["engines"].get("torch-fp32" if cuda else "torch", {}).get("best_tiles_per_s")
    for row in results["engines"].values():
        if base and "best_tiles_per_s" in row:
            row["over_torch_eager"] = round(row["best_tiles_per_s"] / base, 3)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--engines", default="", help="comma-separated (default: every engine of this device)")
    parser.add_argument("--json", default=str(REPO_ROOT / "var" / "bench" / "engines.json"))
    args = parser.parse_args(argv)
    results = measure(Path(args.model), args.seconds, [e for e in args.engines.split(",") if e] or None)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
