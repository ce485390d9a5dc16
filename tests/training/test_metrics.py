import numpy as np
import pytest

from pipelines.classes import default_class_table
from training.metrics import IGNORE_ID, ConfusionMatrix

TABLE = default_class_table()


def test_hand_made_masks_have_known_iou():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [5, 5, 5, 5]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 0], [5, 5, 1, 5]], np.uint8)
    confusion = ConfusionMatrix(len(TABLE))
    confusion.update(truth, pred)
    report = confusion.report(TABLE)
    # background: tp 3, truth 4, pred 4 -> 3/5; sandstone: tp 3, truth 4, pred 5 -> 3/6; limestone: 3/4
    assert report["per_class"]["background"]["iou"] == pytest.approx(3 / 5)
    assert report["per_class"]["sandstone"]["iou"] == pytest.approx(3 / 6)
    assert report["per_class"]["limestone"]["iou"] == pytest.approx(3 / 4)
    assert report["per_class"]["mudstone"]["iou"] is None
    assert report["miou_rock_present"] == pytest.approx((3 / 6 + 3 / 4) / 2)
    assert report["pixel_accuracy"] == pytest.approx(9 / 12)
    # rock vs background: rock truth 8 px, rock pred 8 px, both rock 7 -> 7 / 9
    assert report["rock_vs_background_iou"] == pytest.approx(7 / 9)
    # the two errors in that union, and the rock pixel given the wrong rock class
    assert (report["false_rock_pixels"], report["missed_rock_pixels"], report["wrong_rock_class_pixels"]) == (1, 1, 1)


def test_ignored_pixels_do_not_count():
    truth = np.array([[IGNORE_ID, 1]], np.uint8)
    confusion = ConfusionMatrix(len(TABLE))
    confusion.update(truth, np.array([[3, 1]], np.uint8))
    assert confusion.report(TABLE)["pixel_accuracy"] == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        ConfusionMatrix(3).update(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))


def test_predicted_as_gives_where_each_rock_class_goes():
    # sandstone: 6 px, 3 found, 2 called limestone, 1 background; limestone: 2 px, both found
    truth = np.array([[1, 1, 1, 1, 1, 1, 5, 5, 0]], np.uint8)
    pred = np.array([[1, 1, 1, 5, 5, 0, 5, 5, 1]], np.uint8)
    confusion = ConfusionMatrix(len(TABLE))
    confusion.update(truth, pred)
    shares = confusion.predicted_as(TABLE)
    assert list(shares) == ["sandstone", "limestone"]  # rock classes in the truth only
    assert list(shares["sandstone"].items()) == [
        ("sandstone", 0.5),
        ("limestone", pytest.approx(1 / 3)),
        ("background", pytest.approx(1 / 6)),
    ]
    assert shares["limestone"] == {"limestone": 1.0}
    assert confusion.predicted_as(TABLE, at_least=0.2)["sandstone"] == {"sandstone": 0.5, "limestone": pytest.approx(1 / 3)}
