"""The client and the `lithoseg` commands against the real service over HTTP."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lithoseg_client import Client
from tests.conftest import encode
from tests.service import KEY_A, Service, run_service
from training.synthetic import generate_sample

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def service(serve_port, tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    with run_service(serve_port, store_url=store.as_uri(), gate_threshold=0, scale_search=False, rate_limit_per_minute=0) as running:
        yield running


def core_png(seed: int, size: tuple[int, int] = (224, 288)) -> bytes:
    return encode(generate_sample(seed, height=size[0], width=size[1]).image)


def lithoseg(service: Service, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LITHOSEG_URL": service.base_url, "LITHOSEG_API_KEY": KEY_A}
    return subprocess.run([sys.executable, "-m", "deployments.cli", *args, "--quiet"], capture_output=True, text=True, env=env, timeout=300)


def test_a_folder_batch_writes_a_report_row_per_photo(service: Service, tmp_path):
    folder = tmp_path / "box-photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(core_png(1))
    (folder / "b.png").write_bytes(core_png(2))
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("not a photo")
    run = lithoseg(service, "batch", str(folder), "--report", str(tmp_path / "report.csv"), "--out", str(tmp_path / "out"))
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [r["photo"] for r in rows] == ["a.png", "b.png", "broken.jpg"]
    assert [r["status"] for r in rows] == ["finished", "finished", "refused"]
    assert "not" in rows[2]["error"].lower() and rows[2]["error"].endswith(".")
    for row in rows[:2]:
        assert 0 < float(row["rock_fraction"]) <= 1 and row["job_id"]
        coverage = sum(float(v) for k, v in row.items() if k.startswith("coverage_"))
        assert abs(coverage - float(row["rock_fraction"])) < 0.01
        assert (tmp_path / "out" / f"{Path(row['photo']).stem}.mask.png").stat().st_size > 0
    assert run.returncode == 1 and "2 of 3 photos finished" in run.stdout  # one photo refused


def test_a_zip_batch_and_the_status_command(service: Service, tmp_path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("box1/core.png", core_png(3))
    run = lithoseg(service, "batch", str(archive), "--report", str(tmp_path / "r.csv"))
    assert run.returncode == 0, run.stderr
    (row,) = list(csv.DictReader((tmp_path / "r.csv").open()))
    status = lithoseg(service, "status", row["job_id"])
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "finished"


def test_segment_saves_overlay_mask_and_json(service: Service, tmp_path):
    photo = tmp_path / "core.png"
    photo.write_bytes(core_png(4))
    run = lithoseg(service, "segment", str(photo), "--out", str(tmp_path / "out"), "--mask-weight", "0.7")
    assert run.returncode == 0, run.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"core.json", "core.overlay.png", "core.mask.png"}
    assert json.loads((tmp_path / "out" / "core.json").read_text())["status"] == "finished"


def test_the_client_cancels_a_running_job(service: Service):
    with Client(service.base_url, KEY_A) as client:
        big = client.submit(core_png(5, (1400, 1400)), filename="big.png")
        client.cancel(big.job_id)
        done = client.wait(big.job_id, timeout=120)
        assert done.status == "cancelled" and done.done
        again = client.submit(core_png(6), filename="x.png", idempotency_key="same-key")
        assert client.submit(core_png(6), filename="x.png", idempotency_key="same-key").job_id == again.job_id
        assert client.wait(again.job_id, timeout=120).finished


def test_a_wrong_key_is_a_clear_message(service: Service):
    env_run = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployments.cli",
            "status",
            "c42b9cbe-81b5-4a53-8a4d-88edb8f6ff82",
            "--api-key",
            "wrong",
            "--url",
            service.base_url,
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert env_run.returncode == 1 and "401" in env_run.stderr and env_run.stderr.strip().endswith(".")


def test_roboflow_hosted_model_url_answers_as_segment(service: Service):
    """Seed 001's clients post a base64 body to /{model}/{version}?api_key=...: only the host changes."""
    import base64

    import requests

    info = requests.get(service.url("/ready"), timeout=30).json()["model"]
    image = generate_sample(7, height=224, width=288).image  # (generated either way up)
    body = base64.b64encode(encode(image))
    for path in ("/lithoseg/latest", f"/lithoseg/{info['version']}", f"/{info['name']}/{info['version']}"):
        answer = requests.post(service.url(path), params={"api_key": KEY_A}, data=body, timeout=120)
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) >= {"segmentation_mask", "class_map", "image", "coverage"}
        assert answer.json()["image"] == {"width": image.shape[1], "height": image.shape[0]}
    wrong = requests.post(service.url("/lithoseg/9999"), params={"api_key": KEY_A}, data=body, timeout=60)
    assert wrong.status_code == 404 and "lithoseg/latest" in wrong.json()["detail"]
    assert requests.post(service.url("/lithoseg/latest"), data=body, timeout=60).status_code == 401
    batch = requests.post(service.url("/predict/batch"), params={"api_key": KEY_A}, timeout=60)
    assert batch.status_code == 415  # /predict/batch is still itself, not a model called "predict"


CORE_BOX = ROOT / "tests" / "data" / "corepy_3978.jpg"  # five columns, 3,978-3,988 ft (tests/data/README.md)


def test_a_box_photo_with_its_depths_gets_a_log_in_depth_as_json_csv_and_las(service: Service):
    import io

    import lasio
    import requests

    headers = {"api-key": KEY_A}
    fields = {"top_depth": "3978", "bottom_depth": "3988", "depth_unit": "ft"}
    job_id = requests.post(service.url("/predict"), headers=headers, files={"file": CORE_BOX.read_bytes()}, data=fields, timeout=60).json()[
        "job_id"
    ]
    done = service.wait(job_id)
    assert done["status"] == "finished", done
    log = done["result"]["depth_log"]
    assert (log["top"], log["bottom"], log["unit"], log["columns_found"], log["columns_used"]) == (3978, 3988, "ft", 5, 5)
    intervals = log["intervals"]
    assert intervals[0]["from"] == 3978 and intervals[-1]["to"] == 3988
    assert [r["column"] for r in intervals] == sorted(r["column"] for r in intervals)
    for column in range(1, 6):
        rows = [r for r in intervals if r["column"] == column]
        assert rows[0]["from"] == pytest.approx(3978 + 2 * (column - 1)) and rows[-1]["to"] == pytest.approx(3978 + 2 * column)
        assert all(a["to"] == b["from"] and a["from"] < a["to"] for a, b in zip(rows, rows[1:], strict=False))
    assert any(r["class_id"] != 0 for r in intervals)
    csv_text = requests.get(service.url(f"/job/{job_id}"), params={"form": "csv"}, headers=headers, timeout=30)
    assert csv_text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_text.text)))
    assert len(rows) == len(intervals) and rows[0]["unit"] == "ft" and float(rows[-1]["to"]) == 3988
    las = lasio.read(io.StringIO(requests.get(service.url(f"/job/{job_id}"), params={"form": "las"}, headers=headers, timeout=30).text))
    assert las.well["STRT"].value == 3978 and las.well["STOP"].value == 3988 and set(np.unique(las["LITH"])) <= set(range(12))
    plain = requests.post(service.url("/predict"), headers=headers, files={"file": core_png(8)}, timeout=60).json()["job_id"]
    service.wait(plain)
    refused = requests.get(service.url(f"/job/{plain}"), params={"form": "csv"}, headers=headers, timeout=30)
    assert refused.status_code == 400 and "top_depth" in refused.json()["detail"]
    half = requests.post(service.url("/predict"), headers=headers, files={"file": core_png(8)}, data={"top_depth": "10"}, timeout=60)
    assert half.status_code == 422 and "bottom_depth" in half.json()["detail"]


def test_segment_with_depths_saves_the_log_as_csv_and_las(service: Service, tmp_path):
    lasio = pytest.importorskip("lasio")
    out = tmp_path / "out"
    run = lithoseg(
        service, "segment", str(CORE_BOX), "--out", str(out), "--top-depth", "3978", "--bottom-depth", "3988", "--depth-unit", "ft"
    )
    assert run.returncode == 0, run.stderr
    assert {p.name for p in out.iterdir()} >= {"corepy_3978.log.csv", "corepy_3978.las", "corepy_3978.json"}
    rows = list(csv.DictReader((out / "corepy_3978.log.csv").open()))
    assert float(rows[0]["from"]) == 3978.0 and float(rows[-1]["to"]) == 3988.0 and {r["unit"] for r in rows} == {"ft"}
    las = lasio.read(str(out / "corepy_3978.las"))
    assert las.index[0] >= 3978.0 and las.index[-1] <= 3988.0
    two = lithoseg(service, "segment", str(CORE_BOX), str(CORE_BOX), "--out", str(out), "--top-depth", "1", "--bottom-depth", "2")
    assert two.returncode == 2 and "one box photo" in two.stderr
