"""Record the local autoscaling cluster through a burst of jobs, from submit to scale-in.

    python -m bench.cluster_scaling [--jobs 40] [--out docs/cluster-scaling]

Starts `deployments.cluster` (head + autoscaled gpu/cpu groups, Ray's autoscaler v2) with the
production `serve_config.yaml` sized for this machine (`small_machine_config`), submits a burst of
synthetic core photos over HTTP, and samples once a second: queue depth, backlog in tiles,
Segmenter replicas, nodes per group and tiles completed. Writes `<out>.json` (the samples and
the timings) and `<out>.svg` (the figure), and prints the timings: burst to first added replica,
to full throughput (the most replicas reached), to the last job, to scale-in of the replicas and
of the nodes.

The figure is drawn as a small hand-written SVG (polylines), so recording it needs nothing beyond
the service's own dependencies.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from deployments.cluster import GPU, LocalCluster, free_port, running_cluster, small_machine_config
from deployments.settings import REPO_ROOT, Settings
from pipelines.png import encode_png
from training.synthetic import generate_sample

KEY = "bench-cluster-key"
TERMINAL = ("finished", "failed", "cancelled")


def core_png(seed: int, size: tuple[int, int] = (400, 900)) -> bytes:
    """A synthetic core-box photo (about two tiles without the scale search)."""
    return encode_png(generate_sample(seed, height=size[0], width=size[1]).image)


def submit(base: str, data: bytes, key: str = KEY) -> str:
    response = requests.post(f"{base}/predict", headers={"api-key": key}, files={"file": ("core.png", data)}, timeout=120)
    response.raise_for_status()
    return str(response.json()["job_id"])


def submit_all(base: str, images: list[bytes], key: str = KEY) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda data: submit(base, data, key), images))


def wait_all(base: str, job_ids: list[str], timeout: float, key: str = KEY) -> dict[str, dict[str, Any]]:
    """Every job once it has ended (long polls), or raises TimeoutError naming those still open."""
    deadline = time.monotonic() + timeout
    ended: dict[str, dict[str, Any]] = {}
    while len(ended) < len(job_ids):
        for job_id in job_ids:
            if job_id in ended:
                continue
            job = requests.get(f"{base}/job/{job_id}", params={"wait": 2}, headers={"api-key": key}, timeout=60).json()
            if job["status"] in TERMINAL:
                ended[job_id] = job
        if time.monotonic() > deadline:
            still = {j: "open" for j in job_ids if j not in ended}
            raise TimeoutError(f"{len(still)} of {len(job_ids)} jobs had not ended after {timeout:.0f} s")
    return ended


@dataclass
class Recorder:
    """Samples the cluster once a second on a thread until stopped."""

    cluster: LocalCluster
    base: str
    interval_s: float = 1.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sampled: threading.Condition = field(default_factory=threading.Condition)

    def __enter__(self) -> Recorder:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sample = self.cluster.sample(self.base)
            except Exception as exc:  # a node just killed, the dashboard busy: keep sampling
                sample = {"time": time.time(), "error": type(exc).__name__}
            with self._sampled:
                self.samples.append(sample)
                self._sampled.notify_all()
            self._stop.wait(self.interval_s)

    def wait_for_sample(self, timeout: float = 30) -> None:
        """Until the next sample has been taken (or `timeout`)."""
        with self._sampled:
            count = len(self.samples)
            self._sampled.wait_for(lambda: len(self.samples) > count, timeout)

    def latest(self) -> dict[str, Any]:
        return next((s for s in reversed(self.samples) if "error" not in s), {})


def wait_for(condition: Any, timeout: float, what: str, poll_s: float = 1.0) -> float:
    """Polls `condition()` until true; returns when (time.time()), or raises naming `what`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(poll_s)
    return time.time()


def scaled_in(cluster: LocalCluster, min_replicas: int = 1) -> bool:
    sample = cluster.sample()
    return sample["segmenter_replicas"] <= min_replicas and sample["nodes"][GPU.name] <= min_replicas


@dataclass
class Burst:
    submitted_at: float
    jobs: dict[str, dict[str, Any]]
    samples: list[dict[str, Any]]
    scaled_in_at: float | None

    def timings(self) -> dict[str, float | None]:
        """Seconds from the burst to: the first added replica, the most replicas (full
        throughput), the first added gpu node, the last job ended, the replicas and nodes back
        at their minimum."""
        good = [s for s in self.samples if "error" not in s and s["time"] >= self.submitted_at]
        start = min((s["segmenter_replicas"] for s in good), default=1)
        most = max((s["segmenter_replicas"] for s in good), default=start)
        first_gpu = min((s["nodes"][GPU.name] for s in good), default=0)

        def since(predicate: Any) -> float | None:
            hit = next((s["time"] for s in good if predicate(s)), None)
            return round(hit - self.submitted_at, 1) if hit is not None else None

        last_job = max((j["finished_at"] or 0 for j in self.jobs.values()), default=self.submitted_at)
        return {
            "first_added_replica_s": since(lambda s: s["segmenter_replicas"] > start),
            "first_added_gpu_node_s": since(lambda s: s["nodes"][GPU.name] > first_gpu),
            "full_throughput_s": since(lambda s: s["segmenter_replicas"] >= most),
            "last_job_ended_s": round(last_job - self.submitted_at, 1),
            "scaled_in_s": round(self.scaled_in_at - self.submitted_at, 1) if self.scaled_in_at else None,
            "max_segmenter_replicas": most,
            "max_gpu_nodes": max((s["nodes"][GPU.name] for s in good), default=0),
        }


def run_burst(cluster: LocalCluster, base: str, jobs: int, settle_timeout: float = 300, seed: int = 0, sustain_s: float = 0) -> Burst:
    """Submit `jobs` photos at once, wait for every job, then for the scale-in.

    With `sustain_s`, the load is held until the Segmenter has more replicas than when the burst
    began (or `sustain_s` has passed): whenever fewer than half a burst of jobs are still queued,
    another burst goes in. A fast machine drains one burst before a new gpu node has started and
    loaded the model; the autoscaler answers a backlog that lasts, which is what this holds."""
    with Recorder(cluster, base) as recorder:
        submitted_at = time.time()
        start_replicas = cluster.sample()["segmenter_replicas"]
        ids = submit_all(base, [core_png(seed + i) for i in range(jobs)])
        deadline = time.monotonic() + sustain_s
        while time.monotonic() < deadline:
            latest = recorder.latest()
            if latest.get("segmenter_replicas", start_replicas) > start_replicas:
                break
            if latest.get("time", 0) > submitted_at and latest.get("queued", jobs) < jobs / 2:
                ids += submit_all(base, [core_png(seed + len(ids) + i) for i in range(jobs)])
            recorder.wait_for_sample()
        ended = wait_all(base, ids, timeout=60 + 20 * len(ids))
        try:
            scaled_in_at: float | None = wait_for(lambda: scaled_in(cluster), settle_timeout, "scale-in", poll_s=2)
        except TimeoutError:
            scaled_in_at = None
        recorder.wait_for_sample()  # one more sample at the minimum
    return Burst(submitted_at, ended, recorder.samples, scaled_in_at)


# -- the figure ----------------------------------------------------------------------------------

SERIES = (
    ("queued", "queue depth (jobs)", "#1f77b4"),
    ("backlog_tiles", "backlog (tiles)", "#ff7f0e"),
    ("segmenter_replicas", "Segmenter replicas", "#2ca02c"),
    ("gpu_nodes", "gpu nodes", "#d62728"),
    ("tiles_per_s", "tiles per second", "#9467bd"),
)


def series(burst: Burst) -> dict[str, list[tuple[float, float]]]:
    good = [s for s in burst.samples if "error" not in s]
    out: dict[str, list[tuple[float, float]]] = {key: [] for key, _, _ in SERIES}
    previous: dict[str, Any] | None = None
    for sample in good:
        t = sample["time"] - burst.submitted_at
        for key in ("queued", "backlog_tiles", "segmenter_replicas"):
            if key in sample:
                out[key].append((t, float(sample[key])))
        out["gpu_nodes"].append((t, float(sample["nodes"][GPU.name])))
        if previous is not None and "tiles_completed" in sample and "tiles_completed" in previous:
            dt = sample["time"] - previous["time"]
            out["tiles_per_s"].append((t, max(0.0, sample["tiles_completed"] - previous["tiles_completed"]) / dt if dt > 0 else 0.0))
        previous = sample
    return out


def svg(burst: Burst, title: str) -> str:
    """Five stacked panels sharing the time axis."""
    data = series(burst)
    width, panel, left, top = 760, 90, 150, 40
    t_max = max((t for points in data.values() for t, _ in points), default=1.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + panel * len(SERIES) + 40}"'
        ' font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="13">{title}</text>',
    ]
    plot_w = width - left - 20
    for row, (key, label, colour) in enumerate(SERIES):
        y0 = top + row * panel
        points = data[key]
        v_max = max((v for _, v in points), default=1.0) or 1.0
        parts.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel - 15}" fill="none" stroke="#ccc"/>')
        parts.append(f'<text x="{left - 8}" y="{y0 + 30}" text-anchor="end">{label}</text>')
        parts.append(f'<text x="{left - 8}" y="{y0 + 12}" text-anchor="end" fill="#888">max {v_max:g}</text>')
        coords = " ".join(f"{left + plot_w * t / t_max:.1f},{y0 + (panel - 15) * (1 - v / v_max):.1f}" for t, v in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
    axis_y = top + panel * len(SERIES)
    for tick in range(0, int(t_max) + 1, max(10, int(t_max / 8) // 10 * 10 or 10)):
        x = left + plot_w * tick / t_max
        parts.append(f'<text x="{x:.1f}" y="{axis_y}" text-anchor="middle" fill="#555">{tick}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{axis_y + 18}" text-anchor="middle">seconds since the burst was submitted</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--max-gpu-nodes", type=int, default=3)
    parser.add_argument("--sustain-s", type=float, default=300, help="hold the load until a replica is added, at most this long")
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "cluster-scaling"))
    args = parser.parse_args(argv)
    port = free_port()
    settings: dict[str, Any] = {
        "api_keys": KEY,
        "port": port,
        "rate_limit_per_minute": 0,
        "scale_search": False,
        "jobs_in_flight_per_replica": 2,
        "gate_threshold": 0,
        "store_url": (REPO_ROOT / "var" / "bench-cluster-store").as_uri(),
    }
    config = small_machine_config(Settings(**settings), max_segmenters=args.max_gpu_nodes)
    base = f"http://127.0.0.1:{port}"
    began = time.time()
    with running_cluster(
        config, settings, max_gpu_nodes=args.max_gpu_nodes, max_cpu_nodes=1, idle_timeout_s=15, dashboard_port=free_port()
    ) as cluster:
        print(f"cluster ready after {time.time() - began:.0f} s; submitting {args.jobs} jobs", flush=True)
        burst = run_burst(cluster, base, args.jobs, sustain_s=args.sustain_s)
    timings = burst.timings()
    statuses: dict[str, int] = {}
    for job in burst.jobs.values():
        statuses[job["status"]] = statuses.get(job["status"], 0) + 1
    record = {
        "jobs": len(burst.jobs),
        "statuses": statuses,
        "timings": timings,
        "samples": burst.samples,
        "submitted_at": burst.submitted_at,
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    title = f"{len(burst.jobs)} jobs on the local autoscaling cluster (head + cpu node + 0-{args.max_gpu_nodes} gpu nodes)"
    out.with_suffix(".svg").write_text(svg(burst, title))
    print(json.dumps({"statuses": statuses, **timings}, indent=1))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.svg')}")


if __name__ == "__main__":
    main()
