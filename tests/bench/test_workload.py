"""The bench's workload planning (bench/workload.py): the full workload where the model is fast,
fewer images where it is slow, never fewer than the least each concurrency is measured with."""

from __future__ import annotations

import pytest

from bench.run import PHOTO_SIZES, SCAN_SIZE, SMALL_SIZES
from bench.workload import (
    FULL_PHOTOS,
    FULL_SMALL,
    SMALL_LEAST,
    SUITE_BUDGET_S,
    Workload,
    least_photos,
    mean_tiles,
    plan_workload,
    tiles_per_image,
)
from deployments.settings import DEFAULT_MODEL
from pipelines.model import read_config

# the shipped model's tiles per bench picture, as measured below
PHOTO_TILES, SMALL_TILES, SCAN_TILES = 22.0, 20.0, 431


def test_a_fast_machine_gets_the_full_workload() -> None:
    workload = plan_workload(19.0, SUITE_BUDGET_S - 200, PHOTO_TILES, SMALL_TILES, SCAN_TILES)
    assert workload.photos == FULL_PHOTOS and workload.small == FULL_SMALL and workload.notes == []
    assert workload.predicted_s < workload.seconds_left


@pytest.mark.parametrize("tiles_per_s", [8.0, 5.0, 3.0, 2.0])
def test_a_slow_machine_gets_fewer_images_that_fit_its_time(tiles_per_s: float) -> None:
    seconds_left = SUITE_BUDGET_S - 200
    workload = plan_workload(tiles_per_s, seconds_left, PHOTO_TILES, SMALL_TILES, SCAN_TILES)
    assert workload.notes, "a reduced workload says why"
    assert workload.predicted_s <= seconds_left
    for concurrency, photos in workload.photos.items():
        assert least_photos(concurrency) <= photos <= FULL_PHOTOS[concurrency]
    assert workload.small == 0 or SMALL_LEAST <= workload.small < FULL_SMALL


def test_slower_machines_never_get_more_images() -> None:
    plans = [plan_workload(rate, 1200, PHOTO_TILES, SMALL_TILES, SCAN_TILES) for rate in (20.0, 10.0, 6.0, 4.0, 3.0, 2.0, 1.0)]
    for faster, slower in zip(plans, plans[1:], strict=False):
        assert all(slower.photos[c] <= faster.photos[c] for c in FULL_PHOTOS)
        assert slower.small <= faster.small


def test_where_even_the_least_does_not_fit_the_least_is_measured_and_the_overrun_predicted() -> None:
    workload = plan_workload(0.5, 600, PHOTO_TILES, SMALL_TILES, SCAN_TILES)
    assert workload.photos == {c: least_photos(c) for c in FULL_PHOTOS} and workload.small == 0
    assert workload.predicted_s > workload.seconds_left
    with pytest.raises(ValueError, match="positive"):
        plan_workload(0.0, 600, PHOTO_TILES, SMALL_TILES, SCAN_TILES)


def test_the_plan_round_trips_through_the_report() -> None:
    workload = plan_workload(3.0, 1200, PHOTO_TILES, SMALL_TILES, SCAN_TILES)
    assert Workload.from_report(workload.report()) == workload
    assert "small pictures left out" in workload.describe()


def test_tiles_per_picture_are_the_services_with_the_shipped_settings() -> None:
    """The figures the plan is made from: every pass of the scale search, tiles of at most 512²."""
    config = read_config(DEFAULT_MODEL)
    photos = tiles_per_image(PHOTO_SIZES, DEFAULT_MODEL)
    assert all(len(shapes) >= len(config.scales) for shapes in photos)  # at least one tile a pass
    assert all(h <= config.tile_size and w <= config.tile_size for shapes in photos for h, w in shapes)
    assert mean_tiles(PHOTO_SIZES, DEFAULT_MODEL) == pytest.approx(PHOTO_TILES, rel=0.25)
    assert mean_tiles(SMALL_SIZES, DEFAULT_MODEL) == pytest.approx(SMALL_TILES, rel=0.25)
    assert len(tiles_per_image((SCAN_SIZE,), DEFAULT_MODEL)[0]) == pytest.approx(SCAN_TILES, rel=0.25)
