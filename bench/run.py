"""The benchmark suite (`make bench`): the bare model, the naive server and the service, measured
side by side in one run on this machine, printed as a table and written to var/bench/latest.json.

    $(scripts/venv.sh)/bin/python -m bench.run

1. `model_tiles_per_s`: the shipped model's batched forward pass on 512² tiles in this process,
   for each batch size, one pass at a time on all cores and two concurrent passes sharing them
   (the Segmenter's configuration); the best is the limit the service is measured against.
2. The naive server (`bench/naive_server.py`: one ASGI process, one image at a time) and then the
   service (`make serve`'s command, cold start timed) each get the same images from 1, 8 and 32
   concurrent clients; the service's clients submit and poll (long polls: `GET /job/{id}?wait=30`).
   The images are synthetic core photos at the sizes of the real ones (PHOTO_SIZES, 25-45 tiles
   each with every pass of the scale search), as many as fit the suite's time on this machine
   (`bench/workload.py`: the full workload where the model is fast, fewer images where it is slow);
   `service_tiles_per_s` counts the tiles of finished jobs per second at concurrency 32, and
   `service_over_model_cpu` compares CPU per tile, the service's whole process tree (read from
   /proc) against the bare model on the same tiles before and after it: the machine's drift moves
   wall-clock rates by 10-25 % within minutes, CPU per tile less (run 22: 16 %). Then
   small pictures (768², 4 tiles, where per-job costs weigh most) at concurrency 32: `small`.
3. `submit_p50_ms` / `submit_p99_ms`: POST /predict latency from 2 concurrent clients while big
   jobs keep the model busy and hundreds of jobs wait in the queue; `submit_burst_*` the same
   from 8 clients at once.
4. `large_scan_seconds` / `large_scan_peak_rss_mb`: one 1,500 × 40,000 scan, with the memory of
   the service's whole process tree sampled every 0.25 s (RSS and PSS sums).

Both servers get the content gate switched off (`gate=false`) so that they do the same work.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import requests

from bench import engines as engines_bench
from bench.helpers import encode, free_port
from bench.service_process import MemorySampler, ServiceProcess, cpu_spent, process_times, tree_memory_mb
from bench.workload import SUITE_BUDGET_S, Workload, mean_tiles, plan_workload, tiles_per_image
from deployments.settings import DEFAULT_MODEL, REPO_ROOT
from training.synthetic import generate_sample

KEY = "bench-suite-key"
OUT = REPO_ROOT / "var" / "bench"
CONCURRENCY = (1, 8, 32)


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA), {os.cpu_count()} CPU cores"
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    return f"{model}, {os.cpu_count()} cores, no GPU"


# (height, width) of the real core photos in the project's data (../shared/data/real_cores): drone
# pictures of core boxes at 1,600 × 1,200 and handheld pictures of core about 800 × 1,600; 8 to 12
# tiles each. The main workload, as a user's folder of photos would be.
PHOTO_SIZES = ((1200, 1600), (1600, 1200), (800, 1600), (1600, 800))
# Small pictures, 4 tiles each: where per-job costs weigh most (runs 1-4 used only these).
SMALL_SIZES = ((768, 768),)
SCAN_SIZE = (40_000, 1_500)  # (height, width) of the large scan


def photo_tiles(model: Any, photos: list[bytes]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(tile, blend window) for every tile the service cuts from these photos: the working image
    and each pass of the scale search, resampled, planned and cut by the service's own functions."""
    from pipelines.decode import decode_image
    from pipelines.resolution import resample_image, segmentation_sizes, working_image
    from pipelines.tiling import plan_tiles, tile_cut

    config = model.config
    out = []
    for data in photos:
        image = decode_image(data, 100_000_000)
        height, width = image.shape[:2]
        sizes = segmentation_sizes(height, width, config.max_short_side, config.scales)
        work = working_image(image, sizes[0], model.exposure)
        for size in sizes:
            scaled = resample_image(work, size)
            plan = plan_tiles(*size, config.tile_size, config.tile_overlap, config.output_stride)
            for tile in plan.tiles:
                cut = tile_cut(tile, plan)
                out.append((np.ascontiguousarray(cut.of(scaled)), cut.window()))
    return out


def full_tile_share(sizes: tuple[tuple[int, int], ...]) -> float:
    """How much of a full tile the service's tiles hold on average, over every pass the shipped
    checkpoint's scale search makes on pictures of these sizes, one of each. A small pass is one
    tile smaller than 512² and costs less than the bare model's full tiles, so tiles per second
    alone flatter the service; this share turns them into full-tile equivalents."""
    from pipelines.model import read_config

    tile_size = read_config(DEFAULT_MODEL).tile_size
    shapes = [shape for image in tiles_per_image(sizes, DEFAULT_MODEL) for shape in image]
    return sum(h * w for h, w in shapes) / (len(shapes) * tile_size**2)


def bench_images(count: int, sizes: tuple[tuple[int, int], ...]) -> list[bytes]:
    """Synthetic core photos (JPEG) of the given sizes in turn, the same for every contestant."""
    return [
        encode(generate_sample(50_000_000 + i, height=sizes[i % len(sizes)][0], width=sizes[i % len(sizes)][1]).image, "JPEG", quality=90)
        for i in range(count)
    ]


# -- 1. the bare model -------------------------------------------------------------------------


def model_throughput(seconds: float, workload_only: bool = False) -> tuple[dict[str, float], str, float]:
    """The shipped model as the service runs it (its default engine, softmax, refinement and
    blend weighting included), per batch size: (tiles per second, the engine's name). Under
    `"workload"`, two concurrent passes at batch 1 over the very tiles the service segments for
    the bench's photos (`photo_tiles`: every pass of the scale search, the small ones included),
    the bare model's rate on the service's own work. Third: the CPU milliseconds that workload
    took per tile (this process's user + system time over the timed loop: every engine thread)."""
    import resource

    import torch

    from pipelines.model import load_checkpoint, predict_weighted
    from pipelines.tiling import blend_window

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    models = {1: load_checkpoint(REPO_ROOT / "models" / "lithoseg-default")}  # by concurrent passes: an engine's threads are set when built
    model = models[1]
    if model.device.type == "cpu":  # as the Segmenter loads it: a thread per pass
        models[2] = load_checkpoint(REPO_ROOT / "models" / "lithoseg-default", threads=max(1, cores // 2))
    tiles = [generate_sample(60_000_000 + i, height=512, width=512).image[:512, :512] for i in range(8)]
    tiles = [np.ascontiguousarray(np.pad(t, ((0, 512 - t.shape[0]), (0, 512 - t.shape[1]), (0, 0)), mode="edge")) for t in tiles]
    full = [(tiles[i % len(tiles)], blend_window(512, 512, model.config.tile_overlap)) for i in range(8)]  # an inner tile's window
    workload = photo_tiles(model, bench_images(len(PHOTO_SIZES), PHOTO_SIZES))
    sizes = (1, 2, 4, 8, 16, 32, 64) if model.device.type == "cuda" else (1, 2)

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def measure(size: int, streams: int, work: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
        """(tiles per second, CPU ms a tile) with `streams` threads each running batches of
        `size` tiles of `work` (in turn) back to back."""
        torch.set_num_threads(max(1, cores // streams) if model.device.type == "cpu" else cores)
        served = models.get(streams, model)
        batches = [work[i : i + size] for i in range(0, len(work), size)]
        for batch in batches[:4]:  # warm-up (OpenVINO compiles a shape once)
            predict_weighted(served, [t for t, _ in batch], [w for _, w in batch])
        counts = [0] * streams
        began, cpu_began = time.perf_counter(), cpu_seconds()

        def loop(index: int) -> None:
            turn = index
            while time.perf_counter() - began < seconds:
                batch = batches[turn % len(batches)]
                predict_weighted(served, [t for t, _ in batch], [w for _, w in batch])
                counts[index] += len(batch)
                turn += streams

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done = max(1, sum(counts))
        return done / (time.perf_counter() - began), 1000 * (cpu_seconds() - cpu_began) / done

    rates = {}
    for size in () if workload_only else sizes:  # one pass at a time on every core, and two concurrent passes (as the service runs them)
        rates[str(size)] = measure(size, 1, full)[0]
        rates[f"{size}x2"] = measure(size, 2, full)[0]
    rates["workload"], workload_cpu_ms = measure(1, 2 if model.device.type == "cpu" else 1, workload)
    engine = model.engine.name if model.engine else "torch"
    model = None  # type: ignore[assignment]  # let the caller free them
    models.clear()
    gc.collect()
    return rates, engine, workload_cpu_ms


# -- clients -----------------------------------------------------------------------------------


def run_clients(work: list[bytes], concurrency: int, one: Callable[[bytes], dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    """`concurrency` threads take images from a queue and call `one`; (seconds, results)."""
    todo: queue.Queue[bytes] = queue.Queue()
    for item in work:
        todo.put(item)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            outcome = one(item)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, results


def naive_call(base: str) -> Callable[[bytes], dict[str, Any]]:
    def one(data: bytes) -> dict[str, Any]:
        response = requests.post(f"{base}/predict", data=data, timeout=600)
        response.raise_for_status()
        return {"ok": True}

    return one


def service_call(base: str, poll_s: float) -> Callable[[bytes], dict[str, Any]]:
    headers = {"api-key": KEY}

    def one(data: bytes) -> dict[str, Any]:
        job = requests.post(f"{base}/predict", headers=headers, files={"file": data}, data={"gate": "false"}, timeout=60).json()["job_id"]
        while True:
            info = requests.get(f"{base}/job/{job}", params={"wait": poll_s}, headers=headers, timeout=60).json()
            if info["status"] in ("finished", "failed", "cancelled"):
                if info["status"] != "finished":
                    raise RuntimeError(f"job {job} {info['status']}: {info['error']}")
                return {"tiles": info["total_tiles"] or 0}

    return one


SUBMITTERS = 2  # a client uploading a folder over two connections
BURST_SUBMITTERS = 8  # a burst: on 2 cores the HTTP path itself then queues (Little's law)
LONG_POLL_S = 30.0  # GET /job/{id}?wait=30: one request answers as soon as the job ends


def images_for(count: int, pool: list[bytes]) -> list[bytes]:
    return [pool[i % len(pool)] for i in range(count)]


# -- 2. naive server and service ---------------------------------------------------------------


def bench_naive(photos: list[bytes], small: list[bytes], workload: Workload) -> dict[str, Any]:
    """Images per second of the naive server: the photos at each concurrency, the small pictures
    at the highest (None when the workload leaves them out)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.naive_server", "--port", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the naive server did not start")
            time.sleep(0.2)
        naive_call(base)(photos[0])  # warm-up
        rates = {}
        for concurrency in CONCURRENCY:
            work = images_for(workload.photos[concurrency], photos)
            seconds, _ = run_clients(work, concurrency, naive_call(base))
            rates[str(concurrency)] = len(work) / seconds
            print(f"  naive   c={concurrency:<3} {rates[str(concurrency)]:.3f} images/s ({len(work)} photos)", flush=True)
        if not workload.small:
            return {"photos": rates, "small": None}
        work = images_for(workload.small, small)
        seconds, _ = run_clients(work, CONCURRENCY[-1], naive_call(base))
        print(f"  naive   c={CONCURRENCY[-1]:<3} {len(work) / seconds:.3f} images/s ({len(work)} small pictures)", flush=True)
        return {"photos": rates, "small": len(work) / seconds}
    finally:
        process.terminate()
        process.wait(timeout=60)


def submit_latency(base: str, count: int, submitters: int) -> tuple[float, float, int]:
    """POST /predict latencies (ms) from `submitters` concurrent clients while big jobs keep the
    model busy and the queue grows by `count` jobs."""
    headers = {"api-key": KEY}
    busy = encode(generate_sample(70_000_000, height=1600, width=1600).image, "JPEG", quality=90)
    small = encode(generate_sample(70_000_001, height=256, width=256).image, "JPEG", quality=90)
    ids = [
        requests.post(f"{base}/predict", headers=headers, files={"file": busy}, data={"gate": "false"}, timeout=60).json()["job_id"]
        for _ in range(6)
    ]
    latencies: list[float] = []
    lock = threading.Lock()

    def submitter(n: int) -> None:
        for _ in range(n):
            began = time.perf_counter()
            response = requests.post(f"{base}/predict", headers=headers, files={"file": small}, data={"gate": "false"}, timeout=60)
            elapsed = (time.perf_counter() - began) * 1000
            response.raise_for_status()
            with lock:
                latencies.append(elapsed)
                ids.append(response.json()["job_id"])

    threads = [threading.Thread(target=submitter, args=(count // submitters,)) for _ in range(submitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queued = requests.get(f"{base}/ready", timeout=30).json()["queue"]
    for job_id in ids:  # clear the queue for what follows
        requests.delete(f"{base}/job/{job_id}", headers=headers, timeout=60)
    latencies.sort()
    return statistics.median(latencies), latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], queued


def large_scan(base: str, root_pid: int) -> dict[str, Any]:
    path = OUT / f"scan-{SCAN_SIZE[1]}x{SCAN_SIZE[0]}.jpg"
    if not path.exists():
        path.write_bytes(encode(generate_sample(80_000_000, height=SCAN_SIZE[0], width=SCAN_SIZE[1]).image, "JPEG", quality=90))
    data = path.read_bytes()
    headers = {"api-key": KEY}
    with MemorySampler(root_pid) as memory:
        idle_rss, idle_pss = tree_memory_mb(root_pid)
        began = time.perf_counter()
        job = requests.post(
            f"{base}/predict", headers=headers, files={"file": ("scan.jpg", data)}, data={"gate": "false"}, timeout=120
        ).json()["job_id"]
        while (info := requests.get(f"{base}/job/{job}", headers=headers, timeout=60).json())["status"] not in ("finished", "failed"):
            time.sleep(0.25)
        seconds = time.perf_counter() - began
    if info["status"] != "finished":
        raise RuntimeError(f"the large scan failed: {info['error']}")
    return {
        "large_scan_seconds": seconds,
        "large_scan_tiles": info["total_tiles"],
        "large_scan_peak_rss_mb": memory.peak_rss_mb,
        "large_scan_peak_pss_mb": memory.peak_pss_mb,
        "idle_rss_mb": idle_rss,
        "idle_pss_mb": idle_pss,
        "at_peak": memory.at_peak,
    }


def bench_service(photos: list[bytes], small: list[bytes], submit_count: int, workload: Workload) -> dict[str, Any]:
    store = OUT / "store"
    service = ServiceProcess(free_port(), KEY, store, rate_limit_per_minute="0", max_queued_jobs="2000")
    figures: dict[str, Any] = {}
    try:
        figures["cold_start_s"] = service.start()
        print(f"  service cold start {figures['cold_start_s']:.1f} s", flush=True)
        service_call(service.base, LONG_POLL_S)(photos[0])  # warm-up
        rates, tiles_rate = {}, 0.0
        for concurrency in CONCURRENCY:
            work = images_for(workload.photos[concurrency], photos)
            before = process_times(service.pid)
            seconds, results = run_clients(work, concurrency, service_call(service.base, LONG_POLL_S))
            tiles = sum(r["tiles"] for r in results)
            rates[str(concurrency)] = len(work) / seconds
            tiles_rate = tiles / seconds
            # CPU of the whole process tree per finished tile (the figure kept is the last: 32 clients)
            figures["service_cpu_ms_per_tile"] = 1000 * cpu_spent(before, process_times(service.pid)) / max(1, tiles)
            print(f"  service c={concurrency:<3} {rates[str(concurrency)]:.3f} images/s, {tiles_rate:.2f} tiles/s", flush=True)
        figures["service_images_per_s"] = rates
        figures["service_tiles_per_s"] = tiles_rate  # at the highest concurrency
        figures["small"] = None
        if workload.small:
            work = images_for(workload.small, small)
            seconds, results = run_clients(work, CONCURRENCY[-1], service_call(service.base, LONG_POLL_S))
            figures["small"] = {
                "service_images_per_s": len(work) / seconds,
                "service_tiles_per_s": sum(r["tiles"] for r in results) / seconds,
            }
            print(
                f"  service c={CONCURRENCY[-1]:<3} {figures['small']['service_images_per_s']:.3f} "
                f"images/s, {figures['small']['service_tiles_per_s']:.2f} tiles/s (small pictures)",
                flush=True,
            )
        p50, p99, queued = submit_latency(service.base, submit_count, SUBMITTERS)
        figures.update(submit_p50_ms=p50, submit_p99_ms=p99, submit_queue_depth=queued, submit_clients=SUBMITTERS)
        print(f"  submit latency ({SUBMITTERS} clients) p50 {p50:.1f} ms, p99 {p99:.1f} ms with {queued} jobs queued", flush=True)
        p50, p99, queued = submit_latency(service.base, submit_count, BURST_SUBMITTERS)
        figures.update(submit_burst_p50_ms=p50, submit_burst_p99_ms=p99, submit_burst_clients=BURST_SUBMITTERS)
        print(f"  submit latency ({BURST_SUBMITTERS} clients) p50 {p50:.1f} ms, p99 {p99:.1f} ms with {queued} jobs queued", flush=True)
        scan = large_scan(service.base, service.pid)
        scan.pop("at_peak")
        figures.update(scan)
        print(
            f"  large scan {figures['large_scan_seconds']:.1f} s, peak RSS "
            f"{figures['large_scan_peak_rss_mb']:.0f} MB (PSS {figures['large_scan_peak_pss_mb']:.0f} MB)",
            flush=True,
        )
    finally:
        figures["shutdown_s"] = service.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-seconds", type=float, default=10.0, help="time per batch size for the bare model, and per engine")
    parser.add_argument("--submits", type=int, default=320, help="POST /predict calls timed under saturation")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=SUITE_BUDGET_S / 60,
        help="the suite's time: the servers get fewer images where the full workload would not fit (bench/workload.py)",
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": device_name()}
    print(f"lithoseg benchmark on {report['device']}", flush=True)
    report["engines"] = engines_bench.measure(DEFAULT_MODEL, args.model_seconds)  # every engine, bare network
    gc.collect()
    rates, engine, workload_cpu = model_throughput(args.model_seconds)
    workload_rate = rates.pop("workload")
    best = max(rates, key=lambda k: rates[k])
    report.update(model_tiles_per_s=rates[best], model_best_batch=best, model_tiles_per_s_by_batch=rates, default_engine=engine)
    torch_rate = report["engines"]["engines"].get("torch", {}).get("best_tiles_per_s")
    report["default_engine_over_torch"] = report["engines"]["engines"].get(engine, {}).get("over_torch_eager") if torch_rate else None
    print(
        f"  the model through its default engine ({engine}; batch size, x2 = two concurrent "
        f"passes): {', '.join(f'{k}: {v:.2f}' for k, v in rates.items())} tiles/s; on the photos' own tiles "
        f"(every pass, two concurrent passes): {workload_rate:.2f} tiles/s",
        flush=True,
    )
    workload = plan_workload(
        workload_rate,
        args.budget_minutes * 60 - (time.time() - started),
        mean_tiles(PHOTO_SIZES, DEFAULT_MODEL),
        mean_tiles(SMALL_SIZES, DEFAULT_MODEL),
        len(tiles_per_image((SCAN_SIZE,), DEFAULT_MODEL)[0]),
    )
    report["workload"] = workload.report()
    print(f"  workload: {workload.describe()}", flush=True)
    photos, small = bench_images(8, PHOTO_SIZES), bench_images(8, SMALL_SIZES)
    naive = bench_naive(photos, small, workload)
    report["naive_images_per_s"] = naive["photos"]
    report.update(bench_service(photos, small, args.submits, workload))
    report["service_over_model"] = report["service_tiles_per_s"] / report["model_tiles_per_s"]
    report["photo_full_tile_share"] = full_tile_share(PHOTO_SIZES)  # photos cycle through the sizes evenly
    report["service_over_model_by_area"] = report["service_over_model"] * report["photo_full_tile_share"]
    # the bare model again on the same tiles once the service is gone: this machine drifts by 10 %
    # within minutes, so the service is judged against the mean of the two, and both are kept
    gc.collect()
    after_rates, _, after_cpu = model_throughput(args.model_seconds, workload_only=True)
    after = after_rates["workload"]
    print(f"  the model on the photos' own tiles again, after the service: {after:.2f} tiles/s", flush=True)
    report["model_workload_tiles_per_s_before_after"] = [workload_rate, after]
    report["model_workload_tiles_per_s"] = (workload_rate + after) / 2
    report["service_over_model_workload"] = report["service_tiles_per_s"] / report["model_workload_tiles_per_s"]
    # the same comparison in CPU time per tile, which the machine's drift moves less than
    # wall-clock rates: with every core busy, throughput is cores over CPU per tile
    report["model_workload_cpu_ms_per_tile_before_after"] = [workload_cpu, after_cpu]
    report["service_over_model_cpu"] = (workload_cpu + after_cpu) / 2 / report["service_cpu_ms_per_tile"]
    report["service_over_naive"] = {c: report["service_images_per_s"][c] / naive["photos"][c] for c in naive["photos"]}
    small_figures = report["small"]
    if small_figures is not None:
        small_figures.update(
            sizes=[list(size) for size in SMALL_SIZES],
            naive_images_per_s=naive["small"],
            service_over_model=small_figures["service_tiles_per_s"] / report["model_tiles_per_s"],
            service_over_model_by_area=small_figures["service_tiles_per_s"] / report["model_tiles_per_s"] * full_tile_share(SMALL_SIZES),
            service_over_naive=small_figures["service_images_per_s"] / naive["small"],
        )
    report["photo_sizes"] = [list(size) for size in PHOTO_SIZES]
    report["suite_seconds"] = time.time() - started
    (OUT / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)


def print_table(r: dict[str, Any]) -> None:
    rows = [
        ("device", r["device"]),
        *(
            (
                f"engine {name}",
                (
                    f"{e['best_tiles_per_s']:.2f} tiles/s, {e['share_of_peak']:.0%} "
                    f"of FP32 peak, x{e.get('over_torch_eager', 1):.2f} torch, "
                    f"parity real {e['parity']['real']:.4f} synthetic {e['parity']['synthetic']:.4f}"
                )
                if "best_tiles_per_s" in e
                else f"unavailable: {e.get('unavailable')}",
            )
            for name, e in r["engines"]["engines"].items()
        ),
        ("model_tiles_per_s", f"{r['model_tiles_per_s']:.2f} (batch {r['model_best_batch']}, engine {r['default_engine']})"),
        ("service_tiles_per_s", f"{r['service_tiles_per_s']:.2f}"),
        (
            "service_over_model",
            f"{r['service_over_model']:.2f} (by tile area {r['service_over_model_by_area']:.2f}: "
            f"tiles hold {r['photo_full_tile_share']:.2f} of a full one; over the model on the "
            f"photos' own tiles, {r['model_workload_tiles_per_s']:.2f} tiles/s (mean of before and after the service: "
            f"{' and '.join(f'{v:.2f}' for v in r['model_workload_tiles_per_s_before_after'])}): {r['service_over_model_workload']:.2f})",
        ),
        (
            "service_over_model_cpu",
            f"{r['service_over_model_cpu']:.2f} (CPU ms a tile on the photos' own tiles: model "
            f"{' and '.join(f'{v:.1f}' for v in r['model_workload_cpu_ms_per_tile_before_after'])} before and after, "
            f"service's processes {r['service_cpu_ms_per_tile']:.1f})",
        ),
        *(
            (
                f"images/s c={c}",
                f"naive {r['naive_images_per_s'][c]:.3f} | service "
                f"{r['service_images_per_s'][c]:.3f} | ratio {r['service_over_naive'][c]:.2f}",
            )
            for c in r["naive_images_per_s"]
        ),
        (
            "small pictures, c=32",
            f"service {r['small']['service_tiles_per_s']:.2f} tiles/s, over model {r['small']['service_over_model']:.2f} "
            f"(by area {r['small']['service_over_model_by_area']:.2f}), over naive {r['small']['service_over_naive']:.2f}"
            if r["small"]
            else "left out (the time budget)",
        ),
        (
            "submit_p50_ms / p99",
            f"{r['submit_p50_ms']:.1f} / {r['submit_p99_ms']:.1f} ({r['submit_clients']} clients, {r['submit_queue_depth']} queued)",
        ),
        (
            "submit p50 / p99, burst",
            f"{r['submit_burst_p50_ms']:.1f} / {r['submit_burst_p99_ms']:.1f} ({r['submit_burst_clients']} clients)",
        ),
        ("large_scan_seconds", f"{r['large_scan_seconds']:.1f} ({r['large_scan_tiles']} tiles)"),
        (
            "large_scan_peak_rss_mb",
            f"{r['large_scan_peak_rss_mb']:.0f} (PSS {r['large_scan_peak_pss_mb']:.0f}; "
            f"idle RSS {r['idle_rss_mb']:.0f}, PSS {r['idle_pss_mb']:.0f})",
        ),
        ("cold_start_s", f"{r['cold_start_s']:.1f}"),
        ("workload", Workload.from_report(r["workload"]).describe()),
        ("suite", f"{r['suite_seconds'] / 60:.1f} min"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"\nwritten to {OUT / 'latest.json'}")


if __name__ == "__main__":
    main()
