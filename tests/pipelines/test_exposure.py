"""Auto-exposure: an under-exposed photo is brightened to the training photos' range, one in range is not touched."""

import numpy as np
import pytest

from pipelines.errors import CheckpointError
from pipelines.exposure import AutoExposure
from pipelines.model import read_config
from tests.pipelines.test_gate import MODEL


def photo(bright: int, seed: int = 0) -> np.ndarray:
    """A textured photo whose 99th percentile of grey sits near `bright`."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(bright * 0.6, bright * 0.2, (300, 400, 3)), 0, 255).astype(np.uint8)


def p99(image: np.ndarray) -> float:
    return float(np.percentile(image.reshape(-1, 3).astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32), 99))


def test_a_photo_in_range_is_returned_as_it_is():
    image = photo(230)
    exposure = AutoExposure(target=175.0)
    assert p99(image) > 175 and exposure.gain(image) == 1.0
    assert exposure(image) is image


def test_an_under_exposed_photo_is_lifted_to_the_target():
    bright = photo(230)
    dark = (bright * 0.4).astype(np.uint8)
    exposure = AutoExposure(target=175.0)
    lifted = exposure(dark)
    assert lifted is not dark and lifted.dtype == np.uint8 and lifted.shape == dark.shape
    assert p99(lifted) == pytest.approx(175.0, abs=3)
    assert dark.max() < 255 and np.all(lifted >= dark)  # brighter everywhere, order kept
    order = np.argsort(dark[..., 0].ravel(), kind="stable")
    assert np.all(np.diff(lifted[..., 0].ravel()[order].astype(int)) >= 0)


def test_the_gain_is_capped_and_a_black_picture_stays_black():
    exposure = AutoExposure(target=175.0, max_gain=3.0)
    dim = photo(20)
    assert exposure.gain(dim) == 3.0
    black = np.zeros((50, 60, 3), np.uint8)
    assert exposure.gain(black) == 3.0 and not exposure(black).any()


def test_a_dark_photo_with_a_white_label_is_not_brightened():
    """The bright end decides, not the mean: dark mudstone beside a white depth label is exposed right."""
    image = photo(60)
    image[:40, :80] = 250  # the label: over 1 % of the pixels
    assert AutoExposure(target=175.0).gain(image) == 1.0


def test_a_large_scan_is_sampled_and_brightened_in_bands():
    scan = np.zeros((3000, 700, 3), np.uint8)
    scan[:, :, :] = np.linspace(20, 90, 700, dtype=np.uint8)[None, :, None]
    exposure = AutoExposure(target=175.0)
    lifted = exposure(scan)
    gain = exposure.gain(scan)
    assert 1.8 < gain < 2.1
    assert np.array_equal(lifted, np.clip(scan.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("raw", [{"target": 0}, {"target": 300}, {"max_gain": 0.5}, {"percentile": 0}, {"gamma": 2}])
def test_bad_settings_are_a_checkpoint_error(raw):
    with pytest.raises(CheckpointError, match="auto_exposure"):
        AutoExposure.from_config(raw)


def test_the_shipped_checkpoint_names_its_auto_exposure():
    spec = AutoExposure.from_config(read_config(MODEL).auto_exposure)
    assert spec is not None and spec.max_gain > 1
    assert AutoExposure.from_config(None) is None
