"""End to end: the real Serve application with the shipped model and the local store, over HTTP."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import ray
import requests
from PIL import Image

from deployments.jobs import JOBS_PREFIX, overlay_key
from deployments.settings import DEFAULT_MODEL
from deployments.tracker import TRACKER_NAMESPACE
from pipelines.classes import default_class_table
from pipelines.decode import decode_image
from storage import open_store
from tests.conftest import encode
from tests.pipelines.test_decode import bomb_png
from tests.service import KEY_A, KEY_B, Service, run_service
from training.synthetic import generate_sample

pytestmark = pytest.mark.slow
TABLE = default_class_table()
DATA = Path(__file__).resolve().parents[1] / "data"
NAMES = {c.name for c in TABLE.rock_classes}

# The reference service's documented Python client, verbatim but for the two placeholders.
REFERENCE_CLIENT = """
import requests
import time
import base64
API_KEY = "<YOUR_API_KEY>"
HOST = "http://<HOST_NAME>"
headers = {"api-key": API_KEY}
# submit
with open("core.jpg","rb") as f:
    res = requests.post(f"{HOST}/predict", headers=headers, files={"file": f}, data={"mask_weight": 0.5})
job_id = res.json()["job_id"]
# poll
while True:
    time.sleep(2)
    res = requests.get(f"{HOST}/job/{job_id}?form=json", headers=headers)
    info = res.json()
    status = info["status"]
    print("status:", status)
    if status == "finished":
        b64 = info["result"]["base64"]
        open("result.png","wb").write(base64.b64decode(b64))
        break
    if status == "failed":
        print("error:", info.get("error"))
        break
"""


@pytest.fixture(scope="module")
def service(serve_port, tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    with run_service(
        serve_port,
        app_name="lithoseg-e2e",
        store_url=store.as_uri(),
        max_upload_bytes=3_000_000,
        max_pixels=20_000_000,
        jobs_in_flight_per_replica=2,
    ) as service:
        yield service


def small_core_png(seed: int = 3, size: tuple[int, int] = (224, 288)) -> tuple[bytes, np.ndarray]:
    sample = generate_sample(seed, height=size[0], width=size[1])
    return encode(sample.image), sample.image


def png_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def run_reference_client(base_url: str, key: str, core_jpeg: bytes, folder: Path) -> None:
    """The reference service's documented Python client, verbatim but for its key and host, on
    the shipped core photo: it must end `status: finished` with the overlay in result.png."""
    (folder / "core.jpg").write_bytes(core_jpeg)
    script = REFERENCE_CLIENT.replace("<YOUR_API_KEY>", key).replace("<HOST_NAME>", base_url.removeprefix("http://"))
    (folder / "client.py").write_text(script)
    run = subprocess.run([sys.executable, "client.py"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "status: finished"
    result = Image.open(folder / "result.png")
    assert result.format == "PNG" and result.size == (154, 1600) and result.mode == "RGB"


def test_reference_python_client_runs_unchanged(service: Service, core_jpeg, tmp_path):
    run_reference_client(service.base_url, KEY_A, core_jpeg, tmp_path)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_reference_curl_commands(service: Service, core_jpeg, tmp_path):
    (tmp_path / "core.jpg").write_bytes(core_jpeg)
    submit = subprocess.run(
        ["curl", "-s", "-X", "POST", service.url("/predict"), "-H", f"api-key: {KEY_A}", "-F", "file=@core.jpg", "-F", "mask_weight=0.6"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    body = requests.models.complexjson.loads(submit.stdout)
    assert body["status"] == "queued" and uuid.UUID(body["job_id"])
    service.wait(body["job_id"])
    subprocess.run(
        ["curl", "-s", "-H", f"api-key: {KEY_A}", "-o", "result.png", service.url(f"/job/{body['job_id']}?form=png")],
        cwd=tmp_path,
        check=True,
    )
    assert Image.open(tmp_path / "result.png").size == (154, 1600)


def test_json_png_and_mask_forms_agree(service: Service):
    data, image = small_core_png()
    job_id = service.submit(data).json()["job_id"]
    info = service.wait(job_id)
    assert info["status"] == "finished" and info["error"] is None
    assert info["created_at"] <= info["started_at"] <= info["finished_at"]
    result = info["result"]
    assert set(result["detected_classes"]) <= NAMES
    for name, colour in result["detected_classes"].items():
        assert tuple(colour) == next(c.color for c in TABLE.classes if c.name == name)
    assert result["image"] == {"height": image.shape[0], "width": image.shape[1]}
    assert abs(sum(result["coverage"].values()) - 1.0) < 1e-6
    overlay_from_json = base64.b64decode(result["base64"])
    png = service.job(job_id, form="png")
    assert png.headers["content-type"] == "image/png" and png.content == overlay_from_json
    assert png_array(png.content).shape == image.shape
    mask = service.job(job_id, form="mask")
    mask_image = Image.open(io.BytesIO(mask.content))
    assert mask_image.mode == "L" and mask_image.size == (image.shape[1], image.shape[0])
    ids = np.asarray(mask_image)
    assert ids.max() < len(TABLE)
    detected = {TABLE.classes[i].name for i in np.unique(ids) if i != 0}
    assert detected == set(result["detected_classes"])


def test_unfinished_job_answers_metadata_in_every_form(service: Service):
    big = encode(generate_sample(11, height=1400, width=1400).image, "JPEG", quality=90)
    job_id = service.submit(big).json()["job_id"]
    # asked right after the submit: a 1,400² photo takes seconds of tiles on a CPU, so at least the
    # first answer comes before the job ends; any that came after must be the finished form
    answers = [(form, service.job(job_id, form=form)) for form in ("png", "mask", "json")]
    unfinished = [
        (form, r)
        for form, r in answers
        if r.headers["content-type"].startswith("application/json") and r.json()["status"] in ("queued", "started")
    ]
    assert unfinished and unfinished[0][0] == "png", "the job finished before it could be asked about"
    for _, early in unfinished:
        assert early.json()["result"] is None and early.json()["job_id"] == job_id
    for form, late in answers[len(unfinished) :]:
        assert late.headers["content-type"] == ("image/png" if form in ("png", "mask") else "application/json")
    assert service.wait(job_id)["status"] == "finished"


def test_mask_weight_zero_leaves_the_photo_and_one_paints_pure_colours(service: Service):
    data, image = small_core_png(seed=5)
    zero = service.submit(data, mask_weight="0").json()["job_id"]
    one = service.submit(data, mask_weight="1").json()["job_id"]
    service.wait(zero), service.wait(one)
    assert np.array_equal(png_array(service.job(zero, form="png").content), image)
    painted = png_array(service.job(one, form="png").content)
    ids = png_array(service.job(one, form="mask").content)
    rock = ids != 0
    assert np.array_equal(painted[rock], TABLE.palette[ids[rock]])
    assert np.array_equal(painted[~rock], image[~rock])


def _bad_requests(service: Service, core_jpeg: bytes, own_job: str) -> list[tuple[str, requests.Response, int]]:
    post, get = requests.post, requests.get
    url, a = service.url, {"api-key": KEY_A}
    png = encode(np.zeros((8, 8, 3), np.uint8))
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    huge_pixels = encode(np.zeros((5000, 5000), np.uint8))  # 25 Mpx, a few kB
    return [
        ("no key", post(url("/predict"), files={"file": png}), 401),
        ("wrong key", post(url("/predict"), headers={"api-key": "nope"}, files={"file": png}), 401),
        ("empty file", post(url("/predict"), headers=a, files={"file": ("e.jpg", b"")}), 400),
        ("text file", post(url("/predict"), headers=a, files={"file": ("t.jpg", b"just some text")}), 415),
        ("truncated jpeg", post(url("/predict"), headers=a, files={"file": ("c.jpg", core_jpeg[:3000])}), 415),
        ("jpeg cut inside its header", post(url("/predict"), headers=a, files={"file": ("c.jpg", core_jpeg[:300])}), 415),
        (
            "webp cut inside its header",
            post(url("/predict"), headers=a, files={"file": ("c.webp", encode(np.zeros((8, 8, 3), np.uint8), "WEBP")[:20])}),
            415,
        ),
        ("decompression bomb", post(url("/predict"), headers=a, files={"file": ("b.png", bomb_png(30_000, 30_000))}), 413),
        ("too many pixels", post(url("/predict"), headers=a, files={"file": ("h.png", huge_pixels)}), 413),
        ("too many bytes", post(url("/predict"), headers=a, files={"file": ("big.jpg", b"\xff" * 3_100_000)}), 413),
        ("gif", post(url("/predict"), headers=a, files={"file": ("a.gif", gif.getvalue())}), 415),
        ("mask_weight text", post(url("/predict"), headers=a, files={"file": png}, data={"mask_weight": "abc"}), 422),
        ("mask_weight above 1", post(url("/predict"), headers=a, files={"file": png}, data={"mask_weight": "1.5"}), 422),
        ("mask_weight negative", post(url("/predict"), headers=a, files={"file": png}, data={"mask_weight": "-0.1"}), 422),
        ("mask_weight nan", post(url("/predict"), headers=a, files={"file": png}, data={"mask_weight": "nan"}), 422),
        ("mask_weight inf", post(url("/predict"), headers=a, files={"file": png}, data={"mask_weight": "inf"}), 422),
        ("no file field", post(url("/predict"), headers=a, files={"image": png}), 400),
        ("two files", post(url("/predict"), headers=a, files=[("file", ("a.png", png)), ("file", ("b.png", png))]), 400),
        ("too many fields", post(url("/predict"), headers=a, files={"file": png}, data={f"x{i}": "1" for i in range(20)}), 400),
        ("file as text field", post(url("/predict"), headers=a, files={"file": (None, "not a file")}), 400),
        ("form-encoded body", post(url("/predict"), headers=a, data={"file": "not a file"}), 415),
        ("not multipart", post(url("/predict"), headers={**a, "content-type": "application/json"}, data=b"{}"), 415),
        ("unknown job", get(url(f"/job/{uuid.uuid4()}"), headers=a), 404),
        ("malformed job id", get(url("/job/not-a-uuid"), headers=a), 404),
        ("another key's job", get(url(f"/job/{own_job}"), headers={"api-key": KEY_B}), 404),
        ("another key's delete", requests.delete(url(f"/job/{own_job}"), headers={"api-key": KEY_B}), 404),
        ("bad form", get(url(f"/job/{own_job}"), params={"form": "gif"}, headers=a), 400),
        ("unknown route", get(url("/nope"), headers=a), 404),
        ("wrong method", requests.put(url("/predict"), headers=a), 405),
    ]


def test_bad_inputs_get_a_4xx_sentence_and_the_service_stays_healthy(service: Service, core_jpeg):
    data, _ = small_core_png(seed=8)
    own_job = service.submit(data).json()["job_id"]
    cases = _bad_requests(service, core_jpeg, own_job)
    assert len({name for name, _, _ in cases}) == len(cases) == 29  # every case listed above ran, once
    for name, response, status in cases:
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        if name == "two files":
            assert "one image per request" in response.json()["detail"]
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail[0].isupper() and detail.rstrip().endswith("."), f"{name}: {detail!r}"
    assert requests.get(service.url("/health"), timeout=10).status_code == 200
    assert service.wait(own_job)["status"] == "finished"  # another user's job was not disturbed
    assert service.job(own_job, key=KEY_B).status_code == 404


def test_a_file_that_only_fails_in_the_full_decode_fails_with_a_reason(service: Service):
    """Valid chunk CRCs pass the submit probe; the broken compressed pixels only show when decoding."""
    from tests.pipelines.test_decode import png_chunk

    header = png_chunk(b"IHDR", bytes.fromhex("00000040 00000040 08 02 00 00 00".replace(" ", "")))
    broken = b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", b"this is not zlib data" * 4) + png_chunk(b"IEND", b"")
    response = service.submit(broken)
    assert response.status_code == 202
    info = service.wait(response.json()["job_id"])
    assert info["status"] == "failed" and info["result"] is None
    assert "damaged or truncated" in info["error"] and "Traceback" not in info["error"]
    assert requests.get(service.url("/health"), timeout=10).status_code == 200


def test_jobs_start_in_submission_order(service: Service):
    ids = [service.submit(small_core_png(seed=20 + i)[0]).json()["job_id"] for i in range(6)]
    infos = [service.wait(job_id) for job_id in ids]
    assert all(i["status"] == "finished" for i in infos)
    created = [i["created_at"] for i in infos]
    started = [i["started_at"] for i in infos]
    assert created == sorted(created) and started == sorted(started)


def test_cancel_running_and_queued_jobs(service: Service):
    big = encode(generate_sample(12, height=1600, width=1600).image, "JPEG", quality=90)
    running, second, queued = (service.submit(big).json()["job_id"] for _ in range(3))
    service.wait(running, statuses=("started",))
    cancelled_queued = requests.delete(service.url(f"/job/{queued}"), headers={"api-key": KEY_A}, timeout=30)
    assert cancelled_queued.json() == {"job_id": queued, "status": "cancelled", "deleted": False}
    response = requests.delete(service.url(f"/job/{running}"), headers={"api-key": KEY_A}, timeout=30)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert service.wait(second)["status"] == "finished"  # the queue moves on
    for job_id in (running, queued):
        info = service.job(job_id).json()
        assert info["status"] == "cancelled" and info["result"] is None
    assert service.job(queued).json()["started_at"] is None
    store = open_store(service.settings.store_url)
    assert set(store.list(f"{JOBS_PREFIX}{running}/")) == {f"{JOBS_PREFIX}{running}/record.json"}  # upload and every attempt's PNGs gone
    # deleting a finished job removes it
    assert requests.delete(service.url(f"/job/{second}"), headers={"api-key": KEY_A}, timeout=30).json()["deleted"] is True
    assert service.job(second).status_code == 404


def test_idempotency_key_returns_the_same_job(service: Service):
    data, _ = small_core_png(seed=30)
    headers = {"api-key": KEY_A, "Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = requests.post(service.url("/predict"), headers=headers, files={"file": data}, timeout=30)
    again = requests.post(service.url("/predict"), headers=headers, files={"file": data}, timeout=30)
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["job_id"] == again.json()["job_id"]


def test_killing_the_job_tracker_loses_no_job(service: Service):
    ids = [
        service.submit(encode(generate_sample(40 + i, height=700, width=700).image, "JPEG", quality=90)).json()["job_id"] for i in range(4)
    ]
    service.wait(ids[0], statuses=("started", "finished"))
    tracker = ray.get_actor(service.settings.tracker_name, namespace=TRACKER_NAMESPACE)
    ray.kill(tracker, no_restart=False)
    infos = [service.wait(job_id, timeout=600) for job_id in ids]
    assert [i["status"] for i in infos] == ["finished"] * 4
    store = open_store(service.settings.store_url)
    assert all(overlay_key(job_id, info["attempt"]) in set(store.list(JOBS_PREFIX)) for job_id, info in zip(ids, infos, strict=True))


def test_operations_endpoints(service: Service):
    ready = requests.get(service.url("/ready"), timeout=30)
    assert ready.status_code == 200 and ready.json()["model"]["name"]
    metrics = requests.get(service.url("/metrics"), timeout=30).text
    assert "lithoseg_jobs_submitted_total" in metrics and 'lithoseg_jobs{status="finished"}' in metrics
    spec = requests.get(service.url("/openapi.json"), timeout=30).json()
    assert {"/predict", "/job/{job_id}", "/health", "/ready", "/metrics"} <= set(spec["paths"])
    assert requests.get(service.url("/docs"), timeout=30).status_code == 200


def test_real_core_photo_is_mostly_segmented_as_rock(service: Service, core_jpeg, core_mask):
    job_id = service.submit(core_jpeg, filename="cc05.jpg").json()["job_id"]
    assert service.wait(job_id)["status"] == "finished"
    ids = png_array(service.job(job_id, form="mask").content)
    truth_rock, predicted_rock = core_mask != 0, ids != 0
    iou = (truth_rock & predicted_rock).sum() / (truth_rock | predicted_rock).sum()
    assert iou > 0.5, f"rock-vs-background IoU {iou:.2f} on the shipped sample"


def test_a_phone_heic_is_segmented_as_the_same_pixels_sent_as_png(service: Service):
    """An iPhone's HEIC goes through the whole service and gives the mask that the pixels it
    decodes to give when sent as PNG."""
    heic = (DATA / "corepy_3978_crop.heic").read_bytes()
    masks = []
    for data, name in ((heic, "IMG_0001.HEIC"), (encode(decode_image(heic, 10**8)), "same-pixels.png")):
        job_id = service.submit(data, filename=name, gate="false").json()["job_id"]
        info = service.wait(job_id)
        assert info["status"] == "finished", info
        masks.append(png_array(service.job(job_id, form="mask").content))
    assert masks[0].shape == (240, 320)
    assert (masks[0] == masks[1]).mean() >= 0.999


def test_the_interactive_docs_need_no_internet(service: Service):
    page = requests.get(service.url("/docs"), timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "cdn" not in page.text.lower() and "/static/swagger-ui/swagger-ui-bundle.js" in page.text
    script = requests.get(service.url("/static/swagger-ui/swagger-ui-bundle.js"), timeout=30)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"] and len(script.content) > 1_000_000
    assert requests.get(service.url("/static/swagger-ui/swagger-ui.css"), timeout=30).headers["content-type"].startswith("text/css")
    escape = requests.get(service.url("/static/swagger-ui/%2E%2E%2Fsettings.py"), timeout=30)
    assert escape.status_code == 404 and b"BaseSettings" not in escape.content
    assert requests.get(service.url("/static/swagger-ui/secrets.txt"), timeout=30).status_code == 404


def test_metrics_count_requests_by_route_and_status(service: Service):
    for _ in range(3):
        requests.get(service.url("/job/not-a-uuid"), headers={"api-key": KEY_A}, timeout=30)
    text = requests.get(service.url("/metrics"), timeout=30).text
    counted = [
        line
        for line in text.splitlines()
        if line.startswith("lithoseg_http_requests_total{") and 'route="/job/{job_id}"' in line and 'status="404"' in line
    ]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 3, [line for line in text.splitlines() if "http" in line][:20]


@pytest.mark.parametrize("photo", ["cc05.jpg", "corepy_3978.jpg"])
def test_the_service_and_evaluation_give_the_identical_mask(service: Service, photo: str):
    """One segmentation path: the mask the service returns for a real photo is, pixel for pixel,
    the one `pipelines.segment.segment_image` (what `training.evaluate` scores) computes in this
    process with the same checkpoint: same working size, scale search, exposure, tiling and
    stitching. At the service's batch size (1 here); batches of other sizes can flip a handful of
    pixels (15 of 246,400 at 4), the engines' own arithmetic."""
    from pipelines.decode import decode_image
    from pipelines.model import load_checkpoint
    from pipelines.segment import segment_image

    data = (DATA / photo).read_bytes()
    job_id = service.submit(data, filename=photo).json()["job_id"]
    result = service.wait(job_id)["result"]
    served = png_array(service.job(job_id, form="mask").content)
    # and the result says, for each class it found, whether that class was validated on real photos
    real = {"sandstone", "limestone", "interlayered sandstones and mudstones"}
    assert set(result["class_validation"]) == set(result["detected_classes"])
    assert {name for name, flags in result["class_validation"].items() if flags["validated_on_real_photos"]} == real & set(
        result["detected_classes"]
    )
    local = segment_image(load_checkpoint(DEFAULT_MODEL), decode_image(data, 10**9)).class_ids
    assert served.shape == local.shape
    assert np.array_equal(served, local), f"{int((served != local).sum())} pixels differ"
