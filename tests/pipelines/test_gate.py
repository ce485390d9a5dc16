from pathlib import Path

import numpy as np
import pytest

from pipelines.decode import decode_image
from pipelines.gate import GATE_SIZE, GateBank, GateEncoder, gate_views

DATA = Path(__file__).resolve().parents[1] / "data"
MODEL = Path(__file__).resolve().parents[2] / "models" / "lithoseg-default"


@pytest.mark.parametrize("shape,count", [((300, 400), 1), ((154, 1600), 5), ((40000, 1500), 5), ((100, 160), 3)])
def test_views_are_gate_sized_and_follow_long_scans(shape, count):
    views = gate_views(np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8))
    assert len(views) == count
    assert all(v.shape == (GATE_SIZE, GATE_SIZE, 3) and v.dtype == np.uint8 for v in views)


def test_a_picture_of_a_few_pixels_is_featureless_once_enlarged():
    assert gate_views(np.random.default_rng(0).integers(0, 256, (5, 5, 3), dtype=np.uint8)) == []


def test_the_bank_views_add_quadrants_and_a_three_by_three_grid():
    image = np.random.default_rng(1).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    assert len(gate_views(image, grid=True)) == 1 + 4 + 9


@pytest.mark.parametrize("value", [0, 128, 255])
def test_a_blank_picture_has_no_view_and_scores_zero(value):
    image = np.full((480, 640, 3), value, np.uint8)
    image[::7, ::5] = value + 1 if value < 255 else value - 1  # a whisper of noise is still blank
    assert gate_views(image) == []
    bank = GateBank(np.eye(4, dtype=np.float16), np.array(["a"] * 4), 0.5)
    assert bank.score(np.zeros((0, 4), np.float32)) == 0.0


def test_blank_views_are_dropped_but_a_scan_with_one_blank_end_keeps_the_rest():
    image = np.random.default_rng(2).integers(0, 256, (200, 1000, 3), dtype=np.uint8)
    image[:, :200] = 90  # a blank leader before the core
    views = gate_views(image)
    assert 1 <= len(views) < 5 and all(float(v.std()) > 4 for v in views)


@pytest.fixture(scope="module")
def gate():
    bank = GateBank.load(MODEL)
    assert bank is not None, "the shipped checkpoint carries its gate bank"
    return GateEncoder(), bank


def score(gate, name, exclude=None):
    encoder, bank = gate
    image = decode_image((DATA / name).read_bytes(), 100_000_000)
    return bank.score(encoder.embed(gate_views(image)), exclude=exclude)


def test_a_core_scan_is_accepted_even_with_its_own_photo_left_out_of_the_bank(gate):
    _, bank = gate
    assert score(gate, "cc05.jpg", exclude="cc05") >= bank.threshold


def test_a_close_up_of_a_few_pieces_is_accepted_even_with_its_own_photo_left_out(gate):
    encoder, bank = gate
    image = decode_image((DATA / "cc05.jpg").read_bytes(), 100_000_000)
    h, w = image.shape[:2]
    close_up = np.ascontiguousarray(image[3 * h // 8 : 5 * h // 8, 3 * w // 8 : 5 * w // 8])  # a quarter of each side
    assert bank.score(encoder.embed(gate_views(close_up)), exclude="cc05") >= bank.threshold


def test_the_encoder_embeds_no_views_as_an_empty_batch(gate):
    encoder, bank = gate
    embedded = encoder.embed([])
    assert embedded.shape == (0, bank.embeddings.shape[1])
    assert bank.score(embedded) == 0.0


@pytest.mark.parametrize("name", ["brick.jpg", "chelsea.jpg"])
def test_pictures_that_are_not_cores_are_rejected(gate, name):
    _, bank = gate
    assert score(gate, name) < bank.threshold


def test_bank_round_trip(tmp_path):
    bank = GateBank(np.eye(4, dtype=np.float16), np.array(["a", "a", "b", "b"]), 0.5)
    bank.save(tmp_path)
    loaded = GateBank.load(tmp_path)
    assert loaded is not None and loaded.threshold == 0.5
    query = np.array([[1.0, 0, 0, 0]], np.float32)
    assert loaded.score(query) == pytest.approx(1 / 3)  # mean of the 3 nearest: 1, 0, 0
    assert GateBank.load(tmp_path / "nowhere") is None


def test_evaluate_scores_each_edit_of_the_core_photos_leaving_the_photo_out(gate, tmp_path):
    from pipelines.gate import EDITS, evaluate

    encoder, bank = gate
    (tmp_path / "cc05.jpg").write_bytes((DATA / "cc05.jpg").read_bytes())
    report = evaluate(encoder, bank, tmp_path, None, edits=True)
    edited = report["edited_cores"]
    assert set(edited) == set(EDITS)
    for part in edited.values():
        ((photo, score),) = part["lowest"].items()
        assert photo == "cc05" and part["count"] == 1 and part["rate"] == float(score >= bank.threshold)


def gradient(kind: str, shape: tuple[int, int] = (600, 900)) -> np.ndarray:
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = {
        "horizontal": x / w,
        "vertical": y / h,
        "diagonal": (x + y) / (w + h),
        "radial": np.hypot(x - w / 2, y - h / 2) / np.hypot(w / 2, h / 2),
    }[kind]
    colours = np.stack([40 + 200 * ramp, 90 + 60 * ramp, 230 - 180 * ramp], -1)  # two colours blended
    return np.clip(colours, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["horizontal", "vertical", "diagonal", "radial"])
@pytest.mark.parametrize("finish", ["plain", "jpeg", "noise"])
def test_a_smooth_gradient_has_no_view_so_the_gate_rejects_it(kind, finish):
    import io

    from PIL import Image

    image = gradient(kind)
    if finish == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=85)
        image = np.asarray(Image.open(buffer).convert("RGB"))
    elif finish == "noise":
        image = np.clip(image + np.random.default_rng(0).normal(0, 2, image.shape), 0, 255).astype(np.uint8)
    assert gate_views(image) == []


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SHARED_CORES = sorted((SHARED / "real_cores" / "images").glob("*")) + sorted((SHARED / "unlabelled_cores" / "images").glob("*"))


@pytest.mark.skipif(not SHARED_CORES, reason="the project's shared data is not beside this checkout")
def test_every_core_photo_in_the_data_keeps_its_views_and_passes_the_gate(gate):
    encoder, bank = gate
    for path in SHARED_CORES:
        image = decode_image(path.read_bytes(), 100_000_000)
        views = gate_views(image)
        assert views, f"{path.name} lost every view"
        assert bank.score(encoder.embed(views)) >= bank.threshold, path.name
