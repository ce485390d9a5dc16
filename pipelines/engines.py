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

Artefacts are built once per checkpoint's weights, never per request: an export is written beside
the checkpoint (`engines/<hash of the weights>/` in its directory) or, where that is read-only,
under `~/.cache/lithoseg/engines/<hash of the weights>/`, with the parity measured when it was built
(`parity.json`); an INT8 export is built offline. A reduced-precision engine's held-out checks
(`engines/<engine>.checks.json`, shipped with the checkpoint) name the weights they were measured
with, and count for those weights only. OpenVINO takes tiles of every size (it
compiles the export for each new shape); ONNX Runtime and TensorRT only the export's, and a tile
of another shape (the coarse passes of the scale search, a small picture) runs on the reference
engine. An engine whose runtime is
missing, or whose FP32 export agrees with PyTorch on less than `MIN_FP32_AGREEMENT` of the pixels,
is not used: the model falls back to `torch` and says why in `fallback_reason`.

Thread counts are set explicitly (Ray sets OMP_NUM_THREADS=1 in replicas; ONNX Runtime ignores
it anyway).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.checkpoint_files import CHECKED_ENGINES, ENGINES_DIR, WEIGHTS_FILE

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
FP32_FILE = "model-fp32.onnx"
INT8_FILE = "model-int8.onnx"
REDUCED_PRECISION = CHECKED_ENGINES  # used only after held-out checks (`check`)
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
    """A short digest of a checkpoint's weights: exports built from other weights are never reused.
    Read once per version of the file (`auto` asks for it for every engine it tries)."""
    weights = (checkpoint / WEIGHTS_FILE).resolve()
    stat = weights.stat()
    return _digest_of(str(weights), stat.st_ino, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _digest_of(path: str, inode: int, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def artefact_dir(checkpoint: Path, digest: str | None = None) -> Path:
    """Where engines built from a checkpoint's present weights live: `engines/<digest>/` beside it
    if writable, else `~/.cache/lithoseg/engines/<digest>/` (`digest`: `weights_digest`, where the
    caller has it already). Keyed by the weights, so that an export of weights trained since (a
    checkpoint folder written again) is never taken for these weights' own."""
    digest = digest or weights_digest(checkpoint)
    beside = checkpoint / ENGINES_DIR / digest
    try:
        beside.mkdir(parents=True, exist_ok=True)
        probe = beside / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return beside
    except OSError:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lithoseg" / "engines" / digest
        cache.mkdir(parents=True, exist_ok=True)
        return cache


def checks_paths(checkpoint: Path, digest: str | None = None) -> list[Path]:
    """Where a checkpoint's held-out checks are looked for, in order: beside it (`engines/`, shipped
    with it), then among its built artefacts (where `check` writes when the folder is read-only)."""
    return [checkpoint / ENGINES_DIR, artefact_dir(checkpoint, digest)]


def read_checks(checkpoint: Path, name: str, digest: str) -> dict[str, Any]:
    """The held-out checks engine `name` passed or failed with these weights (`digest`); `{}` when
    never checked. A check of other weights (the folder trained again since) does not count."""
    found = [json.loads(p.read_text()) for d in checks_paths(checkpoint, digest) if (p := d / checks_file(name)).is_file()]
    for checks in found:
        if checks.get("weights") == digest:
            return checks
    if found:
        again = "run python -m training.engine_checks check again"
        return {"accepted": False, "reason": f"checked with other weights than these ({digest}): {again}"}
    return {}


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
    return [_parity_tile(tile_size, i) for i in range(count)]


@functools.lru_cache(maxsize=2 * PARITY_TILES)
def _parity_tile(tile_size: int, index: int) -> np.ndarray:
    """One parity tile, generated once: the first-inference check and the parity check share it.
    Read-only, since every caller gets the same array."""
    from training.synthetic import TRAINING_SEEDS_BELOW, generate_sample

    image = generate_sample(TRAINING_SEEDS_BELOW + 500 + index, height=tile_size, width=tile_size).image
    image.setflags(write=False)
    return image


def first_inference(engine: Engine, normalise: Callable[[np.ndarray], torch.Tensor], tile_size: int) -> None:
    """Run one tile through a newly built engine, so that one that compiled but cannot run on this
    machine is refused at load (and `auto` tries the next) instead of failing every tile. Seen:
    OpenVINO compiles bf16 for a CPU whose bf16 units oneDNN is barred from using
    (ONEDNN_MAX_CPU_ISA=AVX2), then raises at the first inference. It also pays an engine's
    lazy first-call set-up here rather than on the first user's tile."""
    tile = parity_tiles(tile_size, 1)[0]
    try:
        engine(normalise(tile[None]))
    except Exception as exc:  # whatever the runtime raises: the engine is not usable here
        last_line = (str(exc).strip().splitlines() or [""])[-1][:200]  # OpenVINO's messages run over several lines
        raise EngineUnavailable(f"its first inference failed ({type(exc).__name__}: {last_line})") from exc


def argmax_agreement(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """The share of pixels where two engines' logits pick the same class."""
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
    """An ONNX Runtime engine over an exported model file."""
    session = _ort_session(path, threads, providers or ["CPUExecutionProvider"])

    def run(batch: torch.Tensor) -> torch.Tensor:
        logits = session.run(None, {"x": batch.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(logits).to(device)

    return Engine(name, run, size=(tile_size, tile_size))


# -- OpenVINO ----------------------------------------------------------------------------------------


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so bf16 is worth trying."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Compiled:
    """An OpenVINO compiled model and its idle infer requests. A request holds its own activation
    buffers (tens of MB at 512²), so requests are pooled and reused by whichever thread comes
    (the Segmenter runs passes on a pool of threads): as many exist as ran at once, not one per
    thread and shape."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def request(self) -> Iterator[Any]:
        with self._lock:
            request = self._idle.pop() if self._idle else None
        if request is None:
            request = self.model.create_infer_request()
        try:
            yield request
        finally:
            with self._lock:
                self._idle.append(request)


def openvino_engine(name: str, path: Path, tile_size: int, device: torch.device, precision: str, threads: int = 0) -> Engine:
    """OpenVINO on the export, compiled for this CPU with `threads` threads per inference (0: every
    core) and as many streams as that leaves cores for, so that concurrent callers (the
    Segmenter's two passes in flight, one thread each) run in parallel: a compiled model runs one
    request per stream at a time, and with one stream the second pass would wait for the first.

    It takes tiles of any size that is a multiple of the output stride, not only the export's: the
    export's height and width are made dynamic and it is compiled once. The small tiles of the
    coarse passes of the scale search and of small pictures would otherwise run on PyTorch, three
    times slower. This is exact: the export's padding constants (timm's TF "SAME" padding) are the
    same at every even size, and the result agrees with PyTorch at other sizes as at the export's
    (tests/pipelines/test_engines.py). Measured against one static compilation per tile shape
    (12 shapes, bf16, 2 streams): 97 against 102 ms a 512² tile, 870 against 375 MB of memory,
    and no compilation when a new shape comes."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise EngineUnavailable("openvino is not installed") from exc
    core = ov.Core()
    cores = len(os.sched_getaffinity(0))
    streams = max(1, cores // threads) if threads else 1
    # not pinned to cores: in the service the replica shares two cores with a dozen other
    # processes, and a stream pinned to a busy core waits while the other may be free
    # (bench.cpu_accounting A B A B on 2 cores: 8.70 / 11.08 tiles/s pinned, 9.63 / 11.82 not)
    properties = {
        "INFERENCE_PRECISION_HINT": precision,
        "NUM_STREAMS": streams,
        "INFERENCE_NUM_THREADS": cores,
        "ENABLE_CPU_PINNING": False,
    }
    model = core.read_model(str(path))
    model.reshape({model.input(0): ov.PartialShape([-1, 3, -1, -1])})
    compiled = Compiled(core.compile_model(model, "CPU", properties))

    def run(batch: torch.Tensor) -> torch.Tensor:
        with compiled.request() as request:
            logits = request.infer({0: batch.detach().float().cpu().numpy()})[compiled.model.output(0)]
            return torch.from_numpy(np.array(logits)).to(device)

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
    """The recorded agreement of each exported engine with PyTorch (an export's side file)."""
    path = directory / PARITY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_parity(directory: Path, entries: dict[str, Any]) -> None:
    """Record each exported engine's agreement with PyTorch beside the exports."""
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
    digest = weights_digest(checkpoint)
    directory = artefact_dir(checkpoint, digest)
    if name in REDUCED_PRECISION:
        checks = read_checks(checkpoint, name, digest)
        if not checks.get("accepted"):
            reason = checks.get("reason", f"not checked: python -m training.engine_checks check --engine {name}")
            raise EngineUnavailable(f"it has not passed the held-out checks ({reason})")
    if name == "onnxruntime-int8":
        if device.type != "cpu":
            raise EngineUnavailable("INT8 through ONNX Runtime is the CPU path")
        shipped = checkpoint / ENGINES_DIR / digest  # an export shipped in a read-only checkpoint folder
        path = next((d / INT8_FILE for d in (directory, shipped) if (d / INT8_FILE).is_file()), None)
        if path is None:
            raise EngineUnavailable(
                f"no {INT8_FILE} for this checkpoint (python -m training.engine_checks check --engine onnxruntime-int8 builds it)"
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
    first_inference(engine, normalise, tile_size)
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
