import io

import numpy as np
import pytest
from PIL import Image

from pipelines.classes import default_class_table
from pipelines.errors import InvalidParameterError
from pipelines.render import apply_confidence, encode_png, overlay, overlay_png, render_outputs, summarize

TABLE = default_class_table()


def scene():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    ids = np.zeros((20, 30), np.uint8)
    ids[5:10, 5:25] = 5  # limestone
    ids[12:18, 2:8] = 3  # mudstone
    return image, ids


def test_overlay_weight_zero_is_the_photo_and_one_is_pure_colour():
    image, ids = scene()
    assert np.array_equal(overlay(image, ids, TABLE.palette, 0.0), image)
    full = overlay(image, ids, TABLE.palette, 1.0)
    assert np.array_equal(full[ids == 5], np.broadcast_to(TABLE.palette[5], full[ids == 5].shape))
    assert np.array_equal(full[ids == 0], image[ids == 0])  # background never tinted


def test_overlay_blends_linearly():
    image, ids = scene()
    half = overlay(image, ids, TABLE.palette, 0.5).astype(int)
    expected = np.round(0.5 * image[ids == 3] + 0.5 * TABLE.palette[3]).astype(int)
    assert np.abs(half[ids == 3] - expected).max() <= 1


@pytest.mark.parametrize("weight", [-0.1, 1.01, float("nan")])
def test_overlay_refuses_bad_weights(weight):
    image, ids = scene()
    with pytest.raises(InvalidParameterError):
        overlay(image, ids, TABLE.palette, weight)


def test_summary_names_detected_classes_with_their_colours():
    _, ids = scene()
    summary = summarize(ids, TABLE)
    assert summary["detected_classes"] == {"mudstone": [152, 223, 138], "limestone": [197, 176, 213]}
    assert summary["coverage"]["limestone"] == pytest.approx(100 / 600)
    assert sum(summary["coverage"].values()) == pytest.approx(1.0)
    assert summary["image"] == {"height": 20, "width": 30}


def test_mask_png_is_single_channel_class_ids():
    image, ids = scene()
    confidence = (np.arange(ids.size) % 256).astype(np.uint8).reshape(ids.shape)
    outputs = render_outputs(image, ids, confidence, 0.5, TABLE)
    mask = Image.open(io.BytesIO(outputs["mask_png"]))
    assert mask.mode == "L" and np.array_equal(np.asarray(mask), ids)
    heatmap = Image.open(io.BytesIO(outputs["heatmap_png"]))
    assert heatmap.mode == "L" and np.array_equal(np.asarray(heatmap), confidence)
    assert Image.open(io.BytesIO(outputs["overlay_png"])).size == (30, 20)
    assert encode_png(ids)[:8] == b"\x89PNG\r\n\x1a\n"


def test_overlay_in_strips_equals_overlay_at_once(monkeypatch):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (97, 61, 3), dtype=np.uint8)
    ids = rng.integers(0, len(TABLE), (97, 61)).astype(np.uint8)
    whole = overlay(image, ids, TABLE.palette, 0.7)
    monkeypatch.setattr("pipelines.strips.STRIP_PIXELS", 61 * 5)
    assert np.array_equal(overlay(image, ids, TABLE.palette, 0.7), whole)
    streamed = Image.open(io.BytesIO(overlay_png(image, ids, TABLE.palette, 0.7)))
    assert streamed.mode == "RGB" and np.array_equal(np.asarray(streamed), whole)


def test_confidence_threshold_leaves_unsure_pixels_unclassified():
    ids = np.full((2, 3), 4, np.uint8)
    confidence = np.array([[0, 127, 128], [200, 254, 255]], np.uint8)
    out = apply_confidence(ids, confidence, 0.5)
    assert out.tolist() == [[0, 0, 4], [4, 4, 4]]
    assert np.array_equal(apply_confidence(ids, confidence, 0.0), ids)
    assert apply_confidence(ids, confidence, 1.0).tolist() == [[0, 0, 0], [0, 0, 4]]
