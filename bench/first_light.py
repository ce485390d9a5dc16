"""Cold start and single-image latency of `make serve`, measured from outside over HTTP.

    $(scripts/venv.sh)/bin/python -m bench.first_light [image ...]

Starts the service the way `make serve` does (a child process), times start → /ready, submits
each image once and times submit → finished (polling every 20 ms), then sends SIGINT and times the
shutdown. Prints one line per figure; the full benchmark suite is issue "Benchmarks".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from deployments.settings import REPO_ROOT
from tests.conftest import free_port

KEY = "bench-first-light-key"


def main(images: list[str]) -> None:
    port = free_port()
    env = {**os.environ, "LITHOSEG_API_KEYS": KEY, "LITHOSEG_PORT": str(port), "PYTHONPATH": str(REPO_ROOT),
           "LITHOSEG_STORE_URL": (REPO_ROOT / "var" / "bench-store").as_uri()}
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "deployments.local"], env=env, cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if requests.get(f"{base}/ready", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None:
                raise SystemExit("the service exited before it was ready")
            time.sleep(0.1)
        print(f"cold start (start command -> /ready 200): {time.monotonic() - began:.1f} s", flush=True)
        for path in images:
            data = Path(path).read_bytes()
            for attempt in ("first", "second"):
                t0 = time.monotonic()
                job = requests.post(f"{base}/predict", headers={"api-key": KEY}, files={"file": data}, timeout=60).json()["job_id"]
                while (info := requests.get(f"{base}/job/{job}", headers={"api-key": KEY}, timeout=60).json())["status"] not in ("finished", "failed"):
                    time.sleep(0.02)
                elapsed = time.monotonic() - t0
                size = info["result"]["image"] if info["result"] else "?"
                print(f"{Path(path).name} {size} {attempt} run: submit -> {info['status']} {elapsed:.2f} s "
                      f"(queue {info['started_at'] - info['created_at']:.2f} s, processing {info['finished_at'] - info['started_at']:.2f} s)", flush=True)
    finally:
        t0 = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
        print(f"shutdown after SIGINT: {time.monotonic() - t0:.1f} s, exit code {process.returncode}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or [str(REPO_ROOT / "tests" / "data" / "cc05.jpg")])
