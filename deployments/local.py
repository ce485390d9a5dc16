"""`make serve`: the whole service on this machine, in the foreground, with the CPU profile.

Starts a local Ray instance, deploys the application on LITHOSEG_HOST:LITHOSEG_PORT, waits until
it is ready, prints the API key to use (a fresh development key when LITHOSEG_API_KEYS is unset)
and runs until Ctrl-C / SIGTERM, then stops every process it started.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
import time
import urllib.request
from typing import Any

from deployments.ray_environment import LOCAL_RAY_ENVIRONMENT, apply
from deployments.settings import REPO_ROOT, Settings


def start_ray(http_host: str, http_port: int, log_to_driver: bool = True) -> None:
    """A local Ray instance with Serve's HTTP proxy on `http_host:http_port`.

    `log_to_driver=False` keeps replica logs in Ray's session folder instead of this terminal."""
    import ray
    from ray import serve

    apply(LOCAL_RAY_ENVIRONMENT)  # before ray.init: its processes inherit the environment
    ray.init(
        num_cpus=max(2, os.cpu_count() or 2),
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}},
        logging_level=logging.WARNING,
        log_to_driver=log_to_driver,
    )
    serve.start(http_options={"host": http_host, "port": http_port})


def deploy(overrides: dict[str, Any] | None = None, wait_s: float = 300) -> Settings:
    """Deploy the application on the running Serve instance and wait until /ready answers."""
    from ray import serve

    from deployments.app import build_app

    settings = Settings(**(overrides or {}))
    serve.run(build_app(overrides), name=settings.app_name, route_prefix="/", blocking=False)
    wait_until_ready(settings, wait_s)
    return settings


def undeploy(settings: Settings) -> None:
    """Delete the application and its detached job tracker (whose state stays in the store)."""
    import ray
    from ray import serve

    from deployments.tracker import TRACKER_NAMESPACE

    serve.delete(settings.app_name)
    try:
        ray.kill(ray.get_actor(settings.tracker_name, namespace=TRACKER_NAMESPACE), no_restart=True)
    except ValueError:
        return  # never created
    # ray.kill returns at once; until the name is released, the next deploy's Ingress would find
    # this tracker (with this deployment's settings, its store among them) instead of starting one
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ray.get_actor(settings.tracker_name, namespace=TRACKER_NAMESPACE)
        except ValueError:
            return
        time.sleep(0.1)
    raise RuntimeError(f"The job tracker {settings.tracker_name} was still registered 60 s after it was killed.")


def start(overrides: dict[str, Any] | None = None) -> Settings:
    """Start Ray and deploy the service on this machine; returns the settings in use."""
    settings = Settings(**(overrides or {}))
    start_ray(settings.host, settings.port)
    return deploy(overrides)


def wait_until_ready(settings: Settings, wait_s: float) -> None:
    """Block until /ready answers 200 (or raise after `wait_s`)."""
    wait_for_ok(f"http://{settings.host}:{settings.port}/ready", wait_s)


def wait_for_ok(url: str, wait_s: float, poll_s: float = 0.25) -> None:
    """Poll `url` until it answers 200, or raise TimeoutError after `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"The service did not become ready within {wait_s:.0f} s ({url}).")
        time.sleep(poll_s)


def stop() -> None:
    """Shut Serve and Ray down."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def main() -> None:
    """`make serve`: the service on this machine until Ctrl-C, with a development key if none is set."""
    began = time.monotonic()
    overrides: dict[str, Any] = {}
    if not Settings().api_key_list():
        overrides["api_keys"] = "dev-" + secrets.token_urlsafe(18)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    settings = start(overrides)
    base = f"http://{settings.host}:{settings.port}"
    print(f"\nlithoseg is ready at {base} after {time.monotonic() - began:.1f} s", flush=True)
    if "api_keys" in overrides:
        print(f"development API key (LITHOSEG_API_KEYS was unset): {overrides['api_keys']}", flush=True)
        key = overrides["api_keys"]
    else:
        key = "<one of LITHOSEG_API_KEYS>"
    print(f'try: curl -X POST {base}/predict -H "api-key: {key}" -F "file=@core.jpg"', flush=True)
    print(f"docs: {base}/docs    stop: Ctrl-C", flush=True)
    stopping.wait()
    print("stopping...", flush=True)
    stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
