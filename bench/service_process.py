"""The service as a child process, started the way `make serve` starts it, and the memory of its
whole process tree (the driver, Ray's GCS and raylet, every replica and the job tracker).

Memory is read from /proc: resident set size (RSS, what `ps` shows; pages shared between
processes, such as Ray's object store, count once per process that touched them) and
proportional set size (PSS, shared pages divided among their users: the sum is the machine's
real cost).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from deployments.settings import REPO_ROOT


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _kb(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


TICKS = os.sysconf("SC_CLK_TCK")


def process_times(root: int) -> dict[int, tuple[str, float]]:
    """pid -> (name, user + system CPU seconds) for the tree under `root`."""
    times = {}
    for pid in descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[pid] = (process_name(pid), (int(fields[11]) + int(fields[12])) / TICKS)
    return times


def cpu_spent(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> float:
    """CPU seconds the tree spent between two `process_times` readings (a process started in
    between counts from zero)."""
    return sum(cpu - before.get(pid, (name, 0.0))[1] for pid, (name, cpu) in after.items())


def process_name(pid: int) -> str:
    """The process's title (Ray workers set theirs, e.g. `ray::ServeReplica:lithoseg:Tiler`)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode().rsplit("/", 1)[-1]
    except OSError:
        return "?"


@dataclass(frozen=True)
class ProcessMemory:
    """One process's resident memory in MB: RSS split into anonymous (heap), file-backed
    (libraries) and shared-memory (Ray's object store) pages, and PSS."""

    name: str
    anon: float
    file: float
    shmem: float
    pss: float

    @property
    def rss(self) -> float:
        return self.anon + self.file + self.shmem


def process_memory(root: int) -> dict[int, ProcessMemory]:
    """pid -> memory, for the tree under `root`."""
    found = {}
    for pid in descendants(root):
        status = Path(f"/proc/{pid}/status")
        kinds = [_kb(status, key) / 1024 for key in ("RssAnon:", "RssFile:", "RssShmem:")]
        anon, file, shmem = kinds
        found[pid] = ProcessMemory(process_name(pid), anon, file, shmem, _kb(Path(f"/proc/{pid}/smaps_rollup"), "Pss:") / 1024)
    return found


def tree_memory_mb(root: int) -> tuple[float, float]:
    """(RSS sum, PSS sum) of the process tree, in MB."""
    processes = process_memory(root).values()
    return sum(p.rss for p in processes), sum(p.pss for p in processes)


@dataclass
class MemorySampler:
    """Samples the tree's memory every `interval` seconds on a thread; keeps the peaks."""

    root: int
    interval: float = 0.25
    peak_rss_mb: float = 0.0
    peak_pss_mb: float = 0.0
    at_peak: dict[int, ProcessMemory] = field(default_factory=dict)  # every process when the RSS sum peaked
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            processes = process_memory(self.root)
            rss, pss = sum(p.rss for p in processes.values()), sum(p.pss for p in processes.values())
            if rss > self.peak_rss_mb:
                self.peak_rss_mb, self.at_peak = rss, processes
            self.peak_pss_mb = max(self.peak_pss_mb, pss)
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class ServiceProcess:
    """`python -m deployments.local` with the given settings; `start()` returns the cold start."""

    def __init__(self, port: int, key: str, store: Path, **settings: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "LITHOSEG_API_KEYS": key,
            "LITHOSEG_PORT": str(port),
            "LITHOSEG_STORE_URL": store.as_uri(),
            **{f"LITHOSEG_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> float:
        began = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deployments.local"], env=self.env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while True:
            try:
                if requests.get(f"{self.base}/ready", timeout=5).status_code == 200:
                    return time.monotonic() - began
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                raise RuntimeError("the service exited before it was ready")
            if time.monotonic() - began > timeout:
                raise TimeoutError("the service was not ready in time")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> float:
        """SIGINT, as Ctrl-C in `make serve`; returns how long shutting down took."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        began = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return time.monotonic() - began
