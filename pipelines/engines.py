"""Inference engines: what runs the network on a batch of normalised tiles.

Everything around the network (normalisation, softmax, the guided-filter refinement, the blend
window) stays in `pipelines/model.py` and is exact whatever the engine; an engine maps a
(B, 3, H, W) float32 batch to (B, C, H, W) logits.

| name | where | what |
|---|---|---|
| `torch` | CPU, CUDA | PyTorch eager: the reference. On CUDA bf16 autocast and channels-last. |
| `onnxruntime` | CPU | ONNX Runtime, FP32: the network exported at the tile's fixed size. |
| `onnxruntime-int8` | CPU | ONNX Runtime on a static QDQ per-channel INT8 export calibrated on real tiles (`check` builds it). |
| `openvino` | CPU | OpenVINO on the FP32 export, FP32 precision. |
| `openvino-bf16` | CPU | OpenVINO in bf16, on CPUs with native bf16 (AVX-512 BF16, AMX) only (elsewhere it would run FP32). |
| `tensorrt` | CUDA | ONNX Runtime's TensorRT execution provider (CUDA provider behind it) on the FP32 export, fp16 kernels allowed. |
| `torch-compile` | CUDA | `torch.compile(mode="reduce-overhead")` (CUDA graphs) in bf16, one graph per batch size. |
| `auto` | | CPU: the first of `CPU_AUTO_ORDER` that runs here and passes parity, else `torch`; CUDA: `torch`. |

Parity before speed: an engine is used only if its argmax agrees with PyTorch FP32 on at least
`MIN_FP32_AGREEMENT` (99.5 %) of the pixels of the build-time check (FP32 and bf16 alike), and an
INT8 export only if its held-out checks passed (at most 0.01 rock-vs-background IoU and 0.02 mIoU
lost). bf16 is held to the FP32 bar; its held-out figures are in the model card.

Artefacts are built once per checkpoint, never per request: an export is written beside the
checkpoint (`engines/` in its directory) or, where that is read-only, under
`~/.cache/lithoseg/engines/<hash of the weights>/`, with the parity measured when it was built
(`parity.json`); an INT8 export is built offline and shipped beside its checkpoint with the
held-out checks it passed (`<engine>.checks.json`). OpenVINO takes tiles of every size (it
compiles the export for each new shape); ONNX Runtime and TensorRT only the export's, and a tile
of another shape (the coarse passes of the scale search, a small picture) runs on the reference
engine. An engine whose runtime is
missing, or whose FP32 export agrees with PyTorch on less than `MIN_FP32_AGREEMENT` of the pixels,
is not used: the model falls back to `torch` and says why in `fallback_reason`.

Thread counts are set explicitly (Ray sets OMP_NUM_THREADS=1 in replicas; ONNX Runtime ignores
it anyway).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

ENGINES = (
    "auto",
    "torch",
    "torch-fp16",
    "torch-bf16",
    "torch-fp32",
    "onnxruntime",
    "onnxruntime-int8",
    "openvino",
    "openvino-bf16",
    "tensorrt",
    "torch-compile",
)
CUDA_DTYPES = {"torch-fp16": torch.float16, "torch-bf16": torch.bfloat16, "torch-fp32": torch.float32}
CPU_AUTO_ORDER = ("openvino-bf16", "onnxruntime-int8", "openvino", "onnxruntime")  # the first that runs and passes parity
ENGINES_DIR = "engines"
FP32_FILE = "model-fp32.onnx"
INT8_FILE = "model-int8.onnx"
REDUCED_PRECISION = ("onnxruntime-int8", "openvino-bf16")  # used only after held-out checks (`check`)
MAX_ROCK_IOU_LOSS, MAX_MIOU_LOSS = 0.01, 0.02  # what a reduced-precision engine may lose on held-out images


def checks_file(name: str) -> str:
    """The held-out checks a reduced-precision engine passed (or not), written by `check`."""
    return f"{name}.checks.json"


PARITY_FILE = "parity.json"  # FP32 exports' argmax agreement, measured where they were built
OPSET = 18
MIN_FP32_AGREEMENT = 0.995  # argmax agreement with PyTorch an FP32 engine needs to be used
PARITY_TILES = 4  # synthetic tiles compared at build time


class EngineUnavailable(Exception):
    """The engine cannot run here (runtime missing, no CUDA, failed parity...)."""


@dataclass
class Engine:
    """Runs (B, 3, H, W) float32 batches; `run` returns logits on `device`."""

    name: str
    run: Callable[[torch.Tensor], torch.Tensor]
    size: tuple[int, int] | None = None  # the only spatial size it takes (None: any)
    fallback_reason: str | None = None  # why a requested engine was replaced by this one

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.run(batch)

    def accepts(self, height: int, width: int) -> bool:
        return self.size is None or self.size == (height, width)


def torch_engine(network: torch.nn.Module, device: torch.device, dtype: torch.dtype = torch.float16) -> Engine:
    """Eager PyTorch: the reference on a CPU (FP32); on CUDA autocast to `dtype` and channels-last."""

    def run(batch: torch.Tensor) -> torch.Tensor:
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                return network(batch.contiguous(memory_format=torch.channels_last))
        return network(batch)

    return Engine("torch", run)


# -- artefacts -------------------------------------------------------------------------------------


def weights_digest(checkpoint: Path) -> str:
    digest = hashlib.sha256()
    with open(checkpoint / "model.safetensors", "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def artefact_dir(checkpoint: Path) -> Path:
    """Where a checkpoint's engine artefacts live: beside it if writable, else in the user's cache."""
    beside = checkpoint / ENGINES_DIR
    try:
        beside.mkdir(exist_ok=True)
        probe = beside / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return beside
    except OSError:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lithoseg" / "engines" / weights_digest(checkpoint)
        cache.mkdir(parents=True, exist_ok=True)
        return cache


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, so concurrent builders never read half a file."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name + ".", suffix=".tmp", delete=False) as handle:
        temporary = Path(handle.name)
    try:
        write(temporary)
        temporary.chmod(0o644)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def export_onnx(network: torch.nn.Module, tile_size: int, path: Path) -> Path:
    """The network (on the CPU, FP32) as ONNX at a fixed tile size and a dynamic batch. The legacy
    TorchScript exporter: timm's `tf_` SAME padding is computed from the static input size, so a
    fixed size exports it as constant pads (a dynamic size would export shape arithmetic)."""
    if path.is_file():
        return path
    import copy

    cpu_network = copy.deepcopy(network).to("cpu").float().eval()  # a copy: the served network stays where and as it is
    example = torch.zeros(1, 3, tile_size, tile_size)

    def write(temporary: Path) -> None:
        with torch.inference_mode():
            torch.onnx.export(
                cpu_network, (example,), str(temporary), input_names=["x"], output_names=["logits"], opset_version=OPSET,
                dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
            )  # fmt: skip

    _atomic_write(path, write)
    return path


def parity_tiles(tile_size: int, count: int = PARITY_TILES) -> list[np.ndarray]:
    """Synthetic core tiles (seeds training never draws) for the build-time parity check."""
    from pipelines.synthetic import TRAINING_SEEDS_BELOW, generate_sample

    return [generate_sample(TRAINING_SEEDS_BELOW + 500 + i, height=tile_size, width=tile_size).image for i in range(count)]


def argmax_agreement(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    return float((reference.argmax(1) == candidate.argmax(1)).float().mean())


def measure_parity(reference: Engine, candidate: Engine, batches: list[torch.Tensor]) -> float:
    """The mean argmax agreement of two engines over `batches` (normalised tiles)."""
    with torch.inference_mode():
        agreements = [argmax_agreement(reference(b).float().cpu(), candidate(b).float().cpu()) for b in batches]
    return float(np.mean(agreements))


# -- ONNX Runtime ------------------------------------------------------------------------------------


def _ort_session(path: Path, threads: int, providers: list[Any]) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise EngineUnavailable("onnxruntime is not installed") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    available = set(ort.get_available_providers())
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    missing = [n for n in names if n not in available]
    if missing:
        raise EngineUnavailable(f"ONNX Runtime here lacks {', '.join(missing)} (has {', '.join(sorted(available))})")
    return ort.InferenceSession(str(path), options, providers=providers)


def ort_engine(name: str, path: Path, tile_size: int, threads: int, device: torch.device, providers: list[Any] | None = None) -> Engine:
    session = _ort_session(path, threads, providers or ["CPUExecutionProvider"])

    def run(batch: torch.Tensor) -> torch.Tensor:
        logits = session.run(None, {"x": batch.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(logits).to(device)

    return Engine(name, run, size=(tile_size, tile_size))


# -- OpenVINO ----------------------------------------------------------------------------------------


def cpu_has_native_bf16() -> bool:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


OPENVINO_SHAPES_KEPT = 16  # compiled tile shapes an OpenVINO engine keeps (an LRU); about 0.3 s to compile one


def openvino_engine(name: str, path: Path, tile_size: int, device: torch.device, precision: str, threads: int = 0) -> Engine:
    """OpenVINO on the export, compiled for this CPU with `threads` threads per inference (0: every
    core) and as many streams as that leaves cores for, so that concurrent callers (the
    Segmenter's two passes in flight, one thread each) run in parallel: a compiled model runs one
    request per stream at a time, and with one stream the second pass would wait for the first.
    An infer request per calling thread.

    It takes tiles of any size that is a multiple of the output stride, not only the export's: the
    export is reshaped to the batch's shape and compiled for it the first time that shape comes
    (about 0.3 s; the last `OPENVINO_SHAPES_KEPT` shapes are kept). The small tiles of the coarse
    passes of the scale search and of small pictures would otherwise run on PyTorch, three times
    slower. Reshaping is exact: the export's padding constants (timm's TF "SAME" padding) are the
    same at every even size, and the result agrees with PyTorch at other sizes as at the export's
    (tests/pipelines/test_engines.py)."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise EngineUnavailable("openvino is not installed") from exc
    import threading
    from collections import OrderedDict

    core = ov.Core()
    cores = len(os.sched_getaffinity(0))
    streams = max(1, cores // threads) if threads else 1
    properties = {"INFERENCE_PRECISION_HINT": precision, "NUM_STREAMS": streams, "INFERENCE_NUM_THREADS": cores}
    compiled_by_shape: OrderedDict[tuple[int, ...], Any] = OrderedDict()
    compiling = threading.Lock()
    local = threading.local()

    def compiled_for(shape: tuple[int, ...]) -> Any:
        with compiling:
            compiled = compiled_by_shape.get(shape)
            if compiled is None:
                model = core.read_model(str(path))
                model.reshape({model.input(0): ov.PartialShape(list(shape))})
                compiled = compiled_by_shape[shape] = core.compile_model(model, "CPU", properties)
                while len(compiled_by_shape) > OPENVINO_SHAPES_KEPT:
                    compiled_by_shape.popitem(last=False)
            compiled_by_shape.move_to_end(shape)
            return compiled

    def run(batch: torch.Tensor) -> torch.Tensor:
        shape = tuple(batch.shape)
        requests = getattr(local, "requests", None)
        if requests is None:
            requests = local.requests = {}
        compiled = compiled_for(shape)
        request = requests.get(shape)
        if request is None or request[0] is not compiled:  # (a shape evicted and compiled again)
            request = requests[shape] = (compiled, compiled.create_infer_request())
            for stale in [s for s, (c, _) in requests.items() if c is not compiled_by_shape.get(s)]:
                del requests[stale]
        logits = request[1].infer({0: batch.detach().float().cpu().numpy()})[compiled.output(0)]
        return torch.from_numpy(np.array(logits)).to(device)

    compiled_for((1, 3, tile_size, tile_size))  # the export's own shape now, not at the first request
    return Engine(name, run)


# -- CUDA ------------------------------------------------------------------------------------------


COMPILE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # batch sizes a compiled engine has graphs for


def compile_engine(
    network: torch.nn.Module, device: torch.device, tile_size: int, dtype: torch.dtype = torch.float16, max_batch: int = 16
) -> Engine:
    """`torch.compile` with CUDA graphs (mode reduce-overhead), autocast to `dtype`,
    channels-last. A batch is padded up to the next of COMPILE_BUCKETS, and every bucket up to
    `max_batch` is compiled and captured here, at load (about 25 s each on an H200's host), so no
    request ever waits for a compilation. Inductor's CUDA graph trees belong to the thread that
    recorded them, so every call runs on one thread of the engine's own, whichever thread asks."""
    if device.type != "cuda":
        raise EngineUnavailable("torch-compile is the CUDA path; this model runs on the CPU")
    from concurrent.futures import ThreadPoolExecutor

    compiled = torch.compile(network, mode="reduce-overhead", dynamic=False)
    worker = ThreadPoolExecutor(1, thread_name_prefix="torch-compile")
    buckets = [b for b in COMPILE_BUCKETS if b < max_batch] + [max_batch]

    def forward(batch: torch.Tensor) -> torch.Tensor:
        size = batch.shape[0]
        bucket = next((b for b in buckets if b >= size), size)
        if bucket > size:
            batch = torch.cat([batch, batch.new_zeros((bucket - size, *batch.shape[1:]))])
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            return compiled(batch.contiguous(memory_format=torch.channels_last))[:size].clone()  # out of the graph's pool

    def run(batch: torch.Tensor) -> torch.Tensor:
        return worker.submit(forward, batch).result()

    for bucket in buckets:  # compile and capture every graph now, twice (the second run replays it)
        example = torch.zeros(bucket, 3, tile_size, tile_size, device=device)
        run(example)
        run(example)
    return Engine("torch-compile", run, size=(tile_size, tile_size))


# -- choosing ----------------------------------------------------------------------------------------


def read_parity(directory: Path) -> dict[str, Any]:
    path = directory / PARITY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_parity(directory: Path, entries: dict[str, Any]) -> None:
    merged = {**read_parity(directory), **entries}

    def write(path: Path) -> None:
        path.write_text(json.dumps(merged, indent=2) + "\n")

    _atomic_write(directory / PARITY_FILE, write)


def build_engine(
    name: str, network: torch.nn.Module, device: torch.device, checkpoint: Path, tile_size: int, threads: int,
    normalise: Callable[[np.ndarray], torch.Tensor],
) -> Engine:  # fmt: skip
    """The engine `name` for a loaded network (`auto`: the best that passed parity here), or the
    reference engine with `fallback_reason` set when it cannot run. `normalise` turns uint8 tiles
    into the network's input batch (for the parity check)."""
    if name not in ENGINES:
        raise ValueError(f"Unknown engine {name!r}; choose one of {', '.join(ENGINES)}.")
    reference = torch_engine(network, device, torch.float32)
    if device.type == "cuda" and name in ("auto", "torch"):
        return cuda_torch_engine(network, device, tile_size, normalise)
    candidates = [name] if name != "auto" else (list(CPU_AUTO_ORDER) if device.type == "cpu" else [])
    reasons = []
    for candidate in candidates:
        if candidate == "torch":
            return reference
        if candidate in CUDA_DTYPES:
            if device.type != "cuda":
                reasons.append(f"{candidate}: a CUDA precision; this model runs on the CPU")
                continue
            engine = torch_engine(network, device, CUDA_DTYPES[candidate])
            return Engine(candidate, engine.run)
        try:
            return _build(candidate, network, device, checkpoint, tile_size, threads, normalise, reference)
        except EngineUnavailable as exc:
            reasons.append(f"{candidate}: {exc}")
            if name != "auto":
                logger.warning("Engine %s is not available (%s); using torch", candidate, exc)
    return Engine("torch", reference.run, fallback_reason="; ".join(reasons) or None)


def cuda_torch_engine(
    network: torch.nn.Module, device: torch.device, tile_size: int, normalise: Callable[[np.ndarray], torch.Tensor]
) -> Engine:
    """Eager PyTorch on CUDA in the first autocast precision whose argmax agrees with FP32 on
    MIN_FP32_AGREEMENT of the parity tiles: fp16, else bf16, else FP32 (measured at load). fp16
    first: on an H200 it is both faster than bf16 (1,035 against 892 tiles/s at batch 64) and
    closer to FP32 (99.7 % of a real photo's pixels against bf16's 96.8 %)."""
    reference = torch_engine(network, device, torch.float32)
    batches = [normalise(tile[None]) for tile in parity_tiles(tile_size)]
    reasons: list[str] = []
    for name in ("torch-fp16", "torch-bf16"):
        engine = torch_engine(network, device, CUDA_DTYPES[name])
        agreement = measure_parity(reference, engine, batches)
        if agreement >= MIN_FP32_AGREEMENT:
            return Engine(name, engine.run, fallback_reason="; ".join(reasons) or None)
        reasons.append(f"{name} agrees with FP32 on {agreement:.4f} of the pixels")
    return Engine("torch-fp32", reference.run, fallback_reason="; ".join(reasons))


def _build(
    name: str, network: torch.nn.Module, device: torch.device, checkpoint: Path, tile_size: int, threads: int,
    normalise: Callable[[np.ndarray], torch.Tensor], reference: Engine,
) -> Engine:  # fmt: skip
    if name == "torch-compile":
        return compile_engine(network, device, tile_size, torch.float16)
    directory = artefact_dir(checkpoint)
    if name in REDUCED_PRECISION:
        found = [d / checks_file(name) for d in (directory, checkpoint / ENGINES_DIR) if (d / checks_file(name)).is_file()]
        checks = json.loads(found[0].read_text()) if found else {}
        if not checks.get("accepted"):
            reason = checks.get("reason", f"not checked: python -m pipelines.engines check --engine {name}")
            raise EngineUnavailable(f"it has not passed the held-out checks ({reason})")
    if name == "onnxruntime-int8":
        if device.type != "cpu":
            raise EngineUnavailable("INT8 through ONNX Runtime is the CPU path")
        path = next((d / INT8_FILE for d in (directory, checkpoint / ENGINES_DIR) if (d / INT8_FILE).is_file()), None)
        if path is None:
            raise EngineUnavailable(
                f"no {INT8_FILE} for this checkpoint (python -m pipelines.engines check --engine onnxruntime-int8 builds it)"
            )
        return ort_engine(name, path, tile_size, threads, device)
    if name in ("onnxruntime", "openvino", "openvino-bf16") and device.type != "cpu":
        raise EngineUnavailable("this is the CPU path; on CUDA use torch, torch-compile or tensorrt")
    if name == "openvino-bf16" and not cpu_has_native_bf16():
        raise EngineUnavailable("this CPU has no native bf16 (AVX-512 BF16 or AMX)")
    if name == "tensorrt" and device.type != "cuda":
        raise EngineUnavailable("TensorRT needs CUDA")
    path = export_onnx(network, tile_size, directory / FP32_FILE)
    if name == "tensorrt":
        cache = directory / "tensorrt-cache"
        cache.mkdir(exist_ok=True)
        providers: list[Any] = [
            ("TensorrtExecutionProvider", {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}),
            "CUDAExecutionProvider",
        ]
        engine = ort_engine(name, path, tile_size, threads, device, providers)
    elif name.startswith("openvino"):
        engine = openvino_engine(name, path, tile_size, device, "bf16" if name.endswith("bf16") else "f32", threads)
    else:
        engine = ort_engine(name, path, tile_size, threads, device)
    if name in REDUCED_PRECISION:  # judged by its held-out checks, not by pixel agreement
        return engine
    key = f"{path.name}:{name}:{device.type}"
    known = read_parity(directory).get(key)
    if known is None:
        batches = [normalise(tile[None]) for tile in parity_tiles(tile_size)]
        known = {"argmax_agreement": round(measure_parity(reference, engine, batches), 6), "tiles": len(batches)}
        write_parity(directory, {key: known})
    if known["argmax_agreement"] < MIN_FP32_AGREEMENT:
        raise EngineUnavailable(f"it agrees with PyTorch on {known['argmax_agreement']:.4f} of the pixels, under {MIN_FP32_AGREEMENT}")
    return engine


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
    from pipelines.datasets import load_folder

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
    from pipelines.evaluate import evaluate_items

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

    from pipelines.datasets import load_folder, synthetic_item
    from pipelines.evaluate import SYNTHETIC_TEST_SEED
    from pipelines.model import load_checkpoint, normalise

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

    directory = artefact_dir(checkpoint)
    candidate = load_checkpoint(checkpoint, "cpu", engine="torch")
    entry: dict[str, Any] = {"engine": args.engine, "holdout": sorted(holdout)}
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
    (directory / checks_file(args.engine)).write_text(json.dumps(entry, indent=1) + "\n")
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
