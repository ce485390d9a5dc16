"""The web page at `/` in a real browser: Debian's Chromium (installed by `scripts/chromium.sh` in
`make test`) driven by Playwright's Python driver, against the real service over HTTP.

Set LITHOSEG_SCREENSHOTS=docs/screenshots to refresh the README's screenshots from these runs.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import encode
from tests.service import KEY_A, Service, run_service
from training.synthetic import generate_sample

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[1] / "data"
CHROMIUM = os.environ.get("LITHOSEG_CHROMIUM", "/usr/bin/chromium")
# As the machine's notes advise for a closed network: no background connections, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JOB_TIMEOUT_MS = 240_000

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}: scripts/chromium.sh installs Debian's", allow_module_level=True)


@pytest.fixture(scope="module")
def service(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    store = tmp_path_factory.mktemp("store")
    with run_service(serve_port, store_url=store.as_uri(), scale_search=False, rate_limit_per_minute=0) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, service: Service) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1440, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None)
    opened.goto(service.url("/"))
    yield opened
    context.close()
    assert not errors, f"the page threw or broke its Content-Security-Policy: {errors}"


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LITHOSEG_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    assert Image.open(path).size[0] > 0
    return path


def record_statuses(page: Any) -> None:
    """Every status a job card shows, in order, in window.__statuses."""
    page.evaluate(
        """() => {
        window.__statuses = [];
        new MutationObserver((changes) => {
          for (const change of changes) {
            if (change.attributeName === "data-status") window.__statuses.push(change.target.dataset.status);
          }
        }).observe(document.querySelector("#job-list"), {subtree: true, attributes: true, attributeFilter: ["data-status"]});
    }"""
    )


def upload(page: Any, *paths: Path, key: str = KEY_A) -> None:
    page.fill("#api-key", key)
    page.set_input_files("#files", [str(p) for p in paths])


def finished_card(page: Any, name: str) -> Any:
    card = page.locator(".job", has_text=name)
    card.and_(page.locator('[data-status="finished"]')).wait_for(timeout=JOB_TIMEOUT_MS)
    return card


def canvas_pixels(page: Any) -> np.ndarray:
    data = page.evaluate(
        """() => {
        const canvas = document.querySelector("#overlay");
        const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        return {width: canvas.width, height: canvas.height, rgba: Array.from(pixels)};
    }"""
    )
    return np.array(data["rgba"], np.uint8).reshape(data["height"], data["width"], 4)[..., :3]


def download(page: Any, selector: str) -> bytes:
    with page.expect_download() as pending:
        page.click(selector)
    return Path(pending.value.path()).read_bytes()


def test_a_photo_uploaded_in_the_page_is_segmented_and_drawn_in_the_browser(page, service, tmp_path):
    record_statuses(page)
    photo = DATA / "cc05.jpg"
    upload(page, photo)
    card = finished_card(page, "cc05.jpg")
    job_id = card.get_attribute("data-job-id")
    job = service.job(job_id).json()
    result = job["result"]
    assert not result["rejected"]

    # progress: the card went through the job's states, and ends with every tile counted
    statuses = page.evaluate("window.__statuses")
    assert statuses[-1] == "finished" and {"queued", "started"} & set(statuses[:-1]), statuses
    assert card.locator(".tiles").inner_text() == f"{job['total_tiles']}/{job['total_tiles']} tiles"
    assert card.locator("progress").evaluate("bar => bar.value") == 1

    # the legend: each class present, its colour and its coverage as the API gives them
    page.locator("#legend tbody tr").first.wait_for()
    rows = page.locator("#legend tbody tr")
    legend = {rows.nth(i).get_attribute("data-class"): rows.nth(i).locator("td").nth(2).inner_text() for i in range(rows.count())}
    assert legend == {name: f"{100 * share:.1f} %" for name, share in result["coverage"].items()}

    # the slider redraws from what the page holds: no request, rock pixels move to class colours
    requests_seen: list[str] = []
    page.on("request", lambda request: requests_seen.append(request.url))
    page.locator("#mask-weight").fill("0")
    photo_only = canvas_pixels(page)
    page.locator("#mask-weight").fill("1")
    painted = canvas_pixels(page)
    assert requests_seen == []
    assert page.locator("#mask-weight-value").inner_text() == "1.00"
    changed = np.any(photo_only != painted, axis=2)
    assert 0.05 < changed.mean() <= 1.0  # the rock, not nothing
    class_colours = {tuple(colour) for colour in result["detected_classes"].values()}
    painted_colours = {tuple(int(v) for v in rgb) for rgb in painted[changed][:: max(1, int(changed.sum()) // 5000)]}
    assert painted_colours <= class_colours  # at weight 1, every painted pixel is a class colour
    photo_array = np.asarray(Image.open(photo).convert("RGB"))
    assert photo_only.shape[:2] == photo_array.shape[:2] == (result["image"]["height"], result["image"]["width"])

    # the pointer: class and confidence under it
    canvas = page.locator("#overlay").bounding_box()
    page.mouse.move(canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2)
    readout = page.locator("#readout").inner_text()
    match = re.fullmatch(r"(.+) · (\d+) % confident · x \d+, y \d+", readout)
    assert match and match.group(1) in result["class_map"].values() and 0 <= int(match.group(2)) <= 100, readout

    # the log strip: one band per interval of the log
    assert page.locator("#log-strip rect").count() == len(result["lithology_log"]["intervals"])

    # downloads: the mask as the API stores it, the JSON, the log as CSV, the overlay at full size
    mask = download(page, "#download-mask")
    assert mask == service.job(job_id, form="mask").content
    assert json.loads(download(page, "#download-json"))["job_id"] == job_id
    csv_lines = download(page, "#download-csv").decode().splitlines()
    assert csv_lines[0] == "class,class_id,start_px,end_px,start_fraction,end_fraction"
    assert len(csv_lines) == 1 + len(result["lithology_log"]["intervals"])
    page.locator("#mask-weight").fill("0.5")
    overlay = Image.open(io.BytesIO(download(page, "#download-overlay")))
    assert overlay.size == (result["image"]["width"], result["image"]["height"])
    screenshot(page, "page-result.png", tmp_path)


def test_errors_are_shown_as_the_api_sentence(page, service, tmp_path):
    wrong = service.submit(b"not an image", key="not-a-key").json()["detail"]
    upload(page, DATA / "cc05.jpg", key="not-a-key")
    page.locator("#error").wait_for()
    assert page.locator("#error").inner_text() == wrong

    notes = tmp_path / "notes.txt"
    notes.write_text("core description, not a photo")
    expected = service.submit(notes.read_bytes(), filename="notes.txt").json()["detail"]
    upload(page, notes)
    page.locator("#error", has_text=expected).wait_for()
    assert page.locator("#error").inner_text() == expected
    assert page.locator(".job").count() == 0
    screenshot(page, "page-error.png", tmp_path)


def test_a_zip_makes_a_job_per_photo_and_a_picture_that_is_not_core_is_shown_as_rejected(page, service, tmp_path):
    archive = tmp_path / "box.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("synthetic.png", encode(generate_sample(7, height=320, width=640).image))
        zipped.writestr("cat.jpg", (DATA / "chelsea.jpg").read_bytes())
        zipped.writestr("readme.txt", "not an image")
    upload(page, archive)
    finished_card(page, "synthetic.png")
    cat = finished_card(page, "cat.jpg")
    assert page.locator(".job").count() == 2
    assert "readme.txt" in page.locator("#notices").inner_text()
    cat.click()
    page.locator("#rejected").wait_for()
    assert page.locator("#rejected").inner_text().startswith("Not a core photo:")
    assert cat.locator(".reason").inner_text() == "not a core photo"


def test_a_box_photo_with_its_depths_gets_a_log_in_depth(page, service, tmp_path):
    page.fill("#api-key", KEY_A)
    page.click("#depth summary")
    page.fill("#top-depth", "3978")
    page.fill("#bottom-depth", "3988")
    page.select_option("#depth-unit", "ft")
    upload(page, DATA / "corepy_3978.jpg")
    card = finished_card(page, "corepy_3978.jpg")
    job = service.job(card.get_attribute("data-job-id")).json()
    log = job["result"]["depth_log"]
    assert (log["top"], log["bottom"], log["unit"]) == (3978.0, 3988.0, "ft")
    page.locator("#log-strip rect").first.wait_for()
    assert page.locator("#log-strip rect").count() == len(log["intervals"])
    ticks = page.locator("#log-strip text").all_text_contents()
    assert ticks[0] == "3978 ft" and ticks[-1] == "3988 ft"
    csv_text = download(page, "#download-csv").decode()
    assert csv_text == service.job(job["job_id"], form="csv").text
    screenshot(page, "page-depth.png", tmp_path)


def test_the_page_and_its_files_are_served_without_a_key_and_nothing_else_is(service):
    page_html = requests.get(service.url("/"), timeout=30)
    assert page_html.status_code == 200 and page_html.headers["content-type"].startswith("text/html")
    for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', page_html.text):
        assert requests.get(service.url(path), timeout=30).status_code == 200, path
    for path in ("/static/app/..%2F..%2Fsettings.py", "/static/app/index.html", "/static/..%2Fingress.py/app.js"):
        assert requests.get(service.url(path), timeout=30).status_code == 404, path
    unknown = requests.get(service.url("/static/app/settings.py"), timeout=30).json()["detail"]
    assert unknown == "There is no file app/settings.py here."


def test_a_photo_dropped_on_the_page_is_submitted(page, service):
    import base64

    page.fill("#api-key", KEY_A)
    photo = base64.b64encode(encode(generate_sample(11, height=256, width=320).image)).decode()
    transfer = page.evaluate_handle(
        """(data) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
        return transfer;
    }""",
        photo,
    )
    page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
    assert "over" in (page.get_attribute("#drop", "class") or "")  # the drop zone shows it is a target
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    finished_card(page, "dropped.png")
    assert "over" not in (page.get_attribute("#drop", "class") or "")
