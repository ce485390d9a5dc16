"""Hostile input, generated: image files from hypothesis (every mode and format, damaged, absurd
declared sizes, huge EXIF, several frames), the whole API fuzzed from its OpenAPI document by
schemathesis, and bodies far over the upload limit, fast, slow and without Content-Length.

Each test prints its figures (inputs tried, answers by status) for docs/reliability.md.
"""

from __future__ import annotations

import collections
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings

from pipelines.decode import decode_image, probe_image
from pipelines.errors import InputError
from tests.chaos.images import hostile_images
from tests.service import KEY_A, Service, run_service

ROOT = Path(__file__).resolve().parents[2]
MAX_PIXELS = 40_000_000
UPLOAD_LIMIT = 4 * 1024 * 1024
READ_AHEAD_BOUND = 160 * 1024 * 1024  # body bytes a client may get out before the 413 arrives
MULTIPART_FILE_HEAD = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
FIGURES: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def report_figures() -> Iterator[None]:
    yield
    print(f"\nhostile input figures: { ({k: dict(v) for k, v in FIGURES.items()}) }")


def is_sentence(text: object) -> bool:
    return isinstance(text, str) and text[:1].isupper() and text.rstrip().endswith((".", "?", ")"))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_images())
def test_every_hostile_file_is_decoded_or_refused_with_a_sentence(data: bytes):
    """In-process, as the Ingress probes an upload and the Decoder decodes it: an RGB array of the
    probed size, or an InputError whose message is a sentence. Nothing else escapes."""
    FIGURES["decode"]["tried"] += 1
    try:
        info = probe_image(data, MAX_PIXELS)
        pixels = decode_image(data, MAX_PIXELS)
    except InputError as exc:
        FIGURES["decode"]["refused"] += 1
        assert is_sentence(str(exc)), str(exc)
        return
    FIGURES["decode"]["decoded"] += 1
    assert pixels.dtype == np.uint8 and pixels.shape == (info.height, info.width, 3)


def test_zz_print_decode_figures():
    print(f"\nhostile files in-process: {dict(FIGURES['decode'])}")
    assert FIGURES["decode"]["decoded"] > 0 and FIGURES["decode"]["refused"] > 0  # the strategy reaches both sides


# -- over HTTP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    store = tmp_path_factory.mktemp("store")
    with run_service(
        serve_port, store_url=store.as_uri(), scale_search=False, rate_limit_per_minute=0, max_upload_bytes=UPLOAD_LIMIT
    ) as running:
        yield running


@pytest.mark.slow
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=hostile_images(max_side=160))
def test_hostile_files_over_http_get_a_job_or_a_sentence_and_every_job_ends(service: Service, data: bytes):
    answer = service.submit(data, filename="hostile.bin")
    FIGURES["http"][str(answer.status_code)] += 1
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert is_sentence(answer.json()["detail"]), answer.text
        return
    job = service.wait(answer.json()["job_id"], timeout=120)
    FIGURES["http"][f"job {job['status']}"] += 1
    assert job["status"] == "finished" or (job["status"] == "failed" and is_sentence(job["error"])), job


@pytest.mark.slow
def test_the_api_fuzzed_from_its_openapi_document_never_answers_5xx(service: Service, tmp_path):
    """schemathesis (coverage and fuzzing phases) on every operation, with the hooks' check that
    every 4xx is a sentence in `detail`."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.chaos.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        service.url("/openapi.json"),
        "--header",
        f"api-key: {KEY_A}",
        "--checks",
        "not_a_server_error,error_is_a_sentence",
        "--max-examples",
        "60",
        "--seed",
        "7",
        "--request-timeout",
        "60",
        "--workers",
        "2",
        "--generation-database",
        "none",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    summary = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    print(f"\nschemathesis: {summary.group(0) if summary else run.stdout[-2000:]}")
    assert run.returncode == 0, run.stdout[-6000:]
    assert summary and int(summary.group(1)) >= 200
    assert requests.get(service.url("/ready"), timeout=30).status_code == 200


def send_oversized(
    service: Service, path: str, headers: dict[str, str], total: int, chunk: int, pause_s: float, preamble: bytes = b""
) -> tuple[int, int]:
    """Send a chunked body of up to `total` bytes (`preamble`, then random bytes), stopping as soon
    as the service answers; returns (status, bytes of body sent before the answer came)."""
    host, port = service.base_url.removeprefix("http://").split(":")
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Transfer-Encoding: chunked", f"api-key: {KEY_A}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    block = os.urandom(chunk)
    framed = f"{chunk:x}\r\n".encode() + block + b"\r\n"
    first = f"{len(preamble):x}\r\n".encode() + preamble + b"\r\n" if preamble else b""
    pending, sent, answer = memoryview(("\r\n".join(head) + "\r\n\r\n").encode() + first), 0, b""
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        while not answer:
            readable, writable, _ = select.select([connection], [connection] if sent < total else [], [], 30)
            if readable:
                answer = connection.recv(65536)
                break
            if not writable:
                break
            try:
                pending = pending[connection.send(pending) :]
            except (BrokenPipeError, ConnectionResetError):
                break
            if not pending:  # a whole frame is out: the next one
                pending, sent = memoryview(framed), sent + chunk
                if pause_s:
                    time.sleep(pause_s)
        while answer and b"\r\n" not in answer:
            answer += connection.recv(65536)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else 0
    return status, sent


def declared_only(service: Service, path: str, content_type: str, length: int) -> int:
    """The status answered to headers declaring `length` bytes, before any byte of the body."""
    host, port = service.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {host}:{port}",
            f"Content-Length: {length}",
            f"Content-Type: {content_type}",
            f"api-key: {KEY_A}",
        ]
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        answer = connection.recv(65536)
    return int(answer.split(b" ", 2)[1])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "content_type", "pause_s"),
    [
        ("/predict", "application/octet-stream", 0.0),
        ("/predict", "multipart/form-data; boundary=xyz", 0.0),
        ("/predict", "application/octet-stream", 0.002),
        ("/segment", "application/octet-stream", 0.0),
    ],
    ids=["raw-fast", "multipart-fast", "raw-slow", "segment-fast"],
)
def test_a_body_over_the_limit_is_cut_off_while_it_streams(service: Service, path: str, content_type: str, pause_s: float):
    total = 2 * 1024**3 if not pause_s else 256 * 1024**2  # 2 GB fast; 256 MB at a few MB/s
    preamble = MULTIPART_FILE_HEAD if content_type.startswith("multipart/") else b""
    status, sent = send_oversized(service, path, {"Content-Type": content_type}, total, 64 * 1024, pause_s, preamble)
    FIGURES["oversized"][f"{path} {content_type.split(';')[0]} {'slow' if pause_s else 'fast'}"] = sent
    print(f"\n{path} {content_type}: {status} after {sent / 1024**2:.1f} MB of {total / 1024**2:.0f} MB")
    assert status == 413
    # answered long before the body ended, so nothing held it whole; what was sent meanwhile is
    # the kernel's socket buffers and Serve's proxy reading ahead of the Ingress (tens of MB)
    assert sent < READ_AHEAD_BOUND
    assert declared_only(service, path, content_type, 3 * 1024**3) == 413  # refused on its Content-Length alone
    assert requests.get(service.url("/ready"), timeout=30).status_code == 200
