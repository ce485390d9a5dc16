"""Shared fixtures: sample images and a real S3-protocol server (moto) on loopback."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"
# a network small enough to build and run in a unit test: ModelConfig(**SMALL_MODEL)
SMALL_MODEL = {"architecture_kwargs": {"decoder_channels": [32, 16, 16, 8, 8]}, "tile_size": 128, "tile_overlap": 32}
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def encode(array: np.ndarray, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def labelled_folder(root: Path, names: tuple[str, ...] = ("cc05",)) -> Path:
    """A labelled folder in the real data's layout (images/, masks/) holding the shipped sample
    photo and its mask once under each of `names`."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name in names:
        (root / "images" / f"{name}.jpg").write_bytes((DATA / "cc05.jpg").read_bytes())
        (root / "masks" / f"{name}.png").write_bytes((DATA / "cc05_mask.png").read_bytes())
    return root


# options that train SMALL_MODEL from random weights (no pretrained encoder)
SMALL_FROM_SCRATCH = ("--pretrained", "none", "--model-json", json.dumps(SMALL_MODEL))


def train_briefly(out: Path, *options: str, steps: int = 1, val_synthetic: int = 1) -> None:
    """Run `training.train`'s command in process for `steps` steps of two 96² crops into `out`,
    validating once, at the end, on `val_synthetic` synthetic cores; `options` add to these."""
    from training.train import main

    common = ["--batch-size", "2", "--crop", "96", "--val-every", str(steps), "--val-synthetic", str(val_synthetic)]
    main(["--out", str(out), "--steps", str(steps), *common, "--workers", "0", *options])


@pytest.fixture(scope="session")
def core_jpeg() -> bytes:
    """A real core photograph (JPEG bytes), shipped in tests/data."""
    return (DATA / "cc05.jpg").read_bytes()


@pytest.fixture(scope="session")
def core_mask() -> np.ndarray:
    return np.asarray(Image.open(DATA / "cc05_mask.png"))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server process on loopback; yields its endpoint URL and stops it afterwards."""
    executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(executable).exists():
        pytest.skip("moto_server is not installed")
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    process = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2)
            break
        except OSError as exc:
            if hasattr(exc, "code"):  # an HTTP answer of any kind: it is up
                break
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto_server did not start") from exc
            time.sleep(0.1)
    try:
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session", autouse=True)
def aws_credentials() -> None:
    """Dummy credentials for the loopback S3 server; real ones never reach tests."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A fresh, empty bucket on the loopback server; returns its name."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def serve_port(aws_credentials: None) -> Iterator[int]:
    """One local Ray + Serve for the whole session; applications come and go on it."""
    ray = pytest.importorskip("ray")
    from deployments.local import start_ray, stop

    port = free_port()
    start_ray("127.0.0.1", port, log_to_driver=False)  # replica logs: /tmp/ray/session_latest/logs
    try:
        yield port
    finally:
        stop()
        assert not ray.is_initialized()
