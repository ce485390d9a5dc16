"""Cold start and single-image latency of `make serve`, measured from outside over HTTP.

    $(scripts/venv.sh)/bin/python -m bench.first_light [image ...]

Starts the service the way `make serve` does (a child process), times start → /ready, submits
each image twice and times submit → finished (polling every 20 ms), then sends SIGINT and times
the shutdown. The full suite is `make bench` (`bench/run.py`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import requests

from bench.helpers import free_port
from bench.service_process import ServiceProcess
from deployments.settings import REPO_ROOT

KEY = "bench-first-light-key"


def main(images: list[str]) -> None:
    service = ServiceProcess(free_port(), KEY, REPO_ROOT / "var" / "bench-store")
    try:
        print(f"cold start (start command -> /ready 200): {service.start():.1f} s", flush=True)
        for path in images:
            data = Path(path).read_bytes()
            for attempt in ("first", "second"):
                t0 = time.monotonic()
                job = requests.post(f"{service.base}/predict", headers={"api-key": KEY}, files={"file": data}, timeout=60).json()["job_id"]
                while (info := requests.get(f"{service.base}/job/{job}", headers={"api-key": KEY}, timeout=60).json())["status"] not in (
                    "finished",
                    "failed",
                ):
                    time.sleep(0.02)
                elapsed = time.monotonic() - t0
                size = info["result"]["image"] if info["result"] else "?"
                print(
                    f"{Path(path).name} {size} {attempt} run: submit -> {info['status']} {elapsed:.2f} s "
                    f"(queue {info['started_at'] - info['created_at']:.2f} s, processing {info['finished_at'] - info['started_at']:.2f} s)",
                    flush=True,
                )
    finally:
        print(f"shutdown after SIGINT: {service.stop():.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or [str(REPO_ROOT / "tests" / "data" / "cc05.jpg")])
