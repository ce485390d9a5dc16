"""Held-out checks of a reduced-precision inference engine, and the INT8 export they judge.

    python -m training.engine_checks check --engine openvino-bf16 --model models/lithoseg-default \
        --data ../shared/data/real_cores --holdout cc05,cc26,dji0045,dji0049,dji0059

An engine that computes in less than FP32 (INT8 from post-training quantization, bf16) is used by
`auto` only if the checks written here beside the checkpoint (`engines/<engine>.checks.json`,
naming the weights they were measured with) say it loses at most `MAX_ROCK_IOU_LOSS`
rock-vs-background IoU and `MAX_MIOU_LOSS` mIoU against FP32 on held-out photos and held-out
synthetic cores (`pipelines/engines.py` reads them, for those weights only).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.engines import (
    FP32_FILE,
    INT8_FILE,
    MAX_MIOU_LOSS,
    MAX_ROCK_IOU_LOSS,
    REDUCED_PRECISION,
    _atomic_write,
    artefact_dir,
    checks_file,
    checks_paths,
    cpu_has_native_bf16,
    measure_parity,
    openvino_engine,
    ort_engine,
    parity_tiles,
    weights_digest,
)

# -- INT8: post-training quantization, built offline ---------------------------------------------


def quantize_int8(fp32_path: Path, out_path: Path, calibration: list[np.ndarray], normalise: Callable[[np.ndarray], torch.Tensor]) -> Path:
    """Static post-training quantization (QDQ, per-channel INT8 weights, UINT8 activations, MinMax
    calibration) of the FP32 export, calibrated on `calibration` (uint8 tiles of the export's size)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.tiles = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tile = next(self.tiles, None)
            return None if tile is None else {"x": normalise(tile[None]).cpu().numpy()}

    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        _atomic_write(out_path, lambda p: quantize_static(
            str(prepared), str(p), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, per_channel=True,
        ))  # fmt: skip
    return out_path


# -- the command line ----------------------------------------------------------------------------


def _calibration_tiles(folder: str, holdout: set[str], tile_size: int, per_photo: int, seed: int = 0) -> list[np.ndarray]:
    """Random tile-sized crops of the training photos (never the held-out ones), at the working
    size the service segments them at."""
    from training.datasets import load_folder

    rng = np.random.default_rng(seed)
    tiles = []
    for item in load_folder(folder):
        if item.name in holdout:
            continue
        image = item.image
        height, width = image.shape[:2]
        if min(height, width) < tile_size:
            continue
        for _ in range(per_photo):
            y, x = int(rng.integers(0, height - tile_size + 1)), int(rng.integers(0, width - tile_size + 1))
            tiles.append(np.ascontiguousarray(image[y : y + tile_size, x : x + tile_size]))
    return tiles


def held_out_checks(reference: Any, candidate: Any, groups: dict[str, list[Any]]) -> dict[str, Any]:
    """Rock-vs-background IoU and mIoU of two loaded models (FP32 and a reduced-precision engine)
    on each group of labelled images, and whether the candidate loses at most MAX_ROCK_IOU_LOSS
    and MAX_MIOU_LOSS on every group."""
    from training.evaluate import evaluate_items

    figures: dict[str, Any] = {}
    reasons = []
    for name, group in groups.items():
        rows = {
            label: evaluate_items(model, group, model.config.class_table)
            for label, model in (("fp32", reference), ("candidate", candidate))
        }
        figures[name] = {
            "images": len(group),
            **{label: {k: round(r[k], 4) for k in ("rock_vs_background_iou", "miou_rock_present")} for label, r in rows.items()},
        }
        loss_rock = rows["fp32"]["rock_vs_background_iou"] - rows["candidate"]["rock_vs_background_iou"]
        loss_miou = rows["fp32"]["miou_rock_present"] - rows["candidate"]["miou_rock_present"]
        print(f"{name}: {figures[name]}", flush=True)
        if loss_rock > MAX_ROCK_IOU_LOSS or loss_miou > MAX_MIOU_LOSS:
            reasons.append(f"{name} loses {loss_rock:.4f} rock IoU and {loss_miou:.4f} mIoU")
    return {
        "accepted": not reasons,
        "reason": "; ".join(reasons) or f"within {MAX_ROCK_IOU_LOSS} rock IoU and {MAX_MIOU_LOSS} mIoU of FP32",
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> None:
    """`check --engine E`: a reduced-precision engine against the FP32 one on the held-out photos
    and held-out synthetic cores; it is accepted (and `auto` may choose it) only if it loses at most
    0.01 rock-vs-background IoU and 0.02 mIoU. For `onnxruntime-int8` the INT8 export is built
    first, calibrated on the training photos (never the held-out ones)."""
    import argparse

    from pipelines.model import load_checkpoint, normalise
    from training.datasets import load_folder, synthetic_item
    from training.evaluate import SYNTHETIC_TEST_SEED

    parser = argparse.ArgumentParser(description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="held-out checks of a reduced-precision engine (INT8: built first)")
    check.add_argument("--engine", required=True, choices=REDUCED_PRECISION)
    check.add_argument("--model", required=True)
    check.add_argument("--data", required=True, help="labelled folder: calibration on its photos minus --holdout, checks on --holdout")
    check.add_argument("--holdout", required=True, help="comma-separated photo ids the checks run on (never calibrated on)")
    check.add_argument("--per-photo", type=int, default=6, help="INT8 calibration tiles per training photo")
    check.add_argument("--synthetic", type=int, default=20, help="held-out synthetic cores in the checks")
    check.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    threads = args.threads or (os.cpu_count() or 1)
    checkpoint = Path(args.model)
    holdout = {n for n in args.holdout.split(",") if n}
    fp32 = load_checkpoint(checkpoint, "cpu", engine="onnxruntime", threads=threads)
    if fp32.engine is None or fp32.engine.name != "onnxruntime":
        parser.error(f"the FP32 ONNX engine is not available here: {fp32.engine.fallback_reason if fp32.engine else ''}")
    config = fp32.config

    def prepare(tiles: np.ndarray) -> torch.Tensor:
        return normalise(torch.from_numpy(np.array(tiles)), config, torch.device("cpu"))

    digest = weights_digest(checkpoint)
    directory = artefact_dir(checkpoint, digest)
    candidate = load_checkpoint(checkpoint, "cpu", engine="torch")
    entry: dict[str, Any] = {"engine": args.engine, "weights": digest, "holdout": sorted(holdout)}
    if args.engine == "onnxruntime-int8":
        calibration = _calibration_tiles(args.data, holdout, config.tile_size, args.per_photo)
        out = quantize_int8(directory / FP32_FILE, directory / INT8_FILE, calibration, prepare)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {len(calibration)} calibration tiles", flush=True)
        candidate.engine = ort_engine(args.engine, out, config.tile_size, threads, torch.device("cpu"))
        entry["calibration_tiles"] = len(calibration)
    else:
        if not cpu_has_native_bf16():
            parser.error("this CPU has no native bf16: OpenVINO would run FP32 and the check would prove nothing")
        candidate.engine = openvino_engine(args.engine, directory / FP32_FILE, config.tile_size, torch.device("cpu"), "bf16")
    groups = {
        "real_holdout": load_folder(args.data, names=holdout),
        "synthetic": [synthetic_item(SYNTHETIC_TEST_SEED + i) for i in range(args.synthetic)],
    }
    entry.update(held_out_checks(fp32, candidate, groups))
    assert fp32.engine is not None and candidate.engine is not None
    entry["argmax_agreement_with_fp32"] = round(
        measure_parity(fp32.engine, candidate.engine, [prepare(t[None]) for t in parity_tiles(config.tile_size)]), 4
    )
    text = json.dumps(entry, indent=1) + "\n"
    for folder in checks_paths(checkpoint, digest):  # beside the checkpoint, to ship with it, unless that is read-only
        try:
            (folder / checks_file(args.engine)).write_text(text)
            break
        except OSError:
            continue
    print(text, end="")


if __name__ == "__main__":
    main()
