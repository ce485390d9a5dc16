import numpy as np
import pytest

from pipelines.tiling import Stitcher, blend_window, cut_tile, pad_image, plan_tiles


@pytest.mark.parametrize("shape", [(32, 32), (100, 37), (512, 512), (513, 1700), (1600, 154), (2000, 3000)])
def test_plan_covers_every_pixel_with_stride_aligned_tiles(shape):
    plan = plan_tiles(*shape, tile_size=512, overlap=64, stride=32)
    covered = np.zeros((plan.padded_height, plan.padded_width), bool)
    for tile in plan.tiles:
        assert tile.shape[0] % 32 == 0 and tile.shape[1] % 32 == 0
        assert tile.shape[0] <= 512 and tile.shape[1] <= 512
        covered[tile.y0 : tile.y1, tile.x0 : tile.x1] = True
    assert covered[: shape[0], : shape[1]].all()


def test_small_image_gets_one_rounded_tile():
    plan = plan_tiles(100, 37, tile_size=512, overlap=64, stride=32)
    assert len(plan) == 1 and plan.tiles[0].shape == (128, 64)


def test_blend_window_is_smooth_and_positive():
    window = blend_window(512, 512, 64)
    assert window.min() > 0 and window.max() == pytest.approx(1.0)
    assert np.abs(np.diff(window, axis=0)).max() < 0.05


def test_stitching_a_known_field_reproduces_it():
    """Tiles of a known per-pixel probability field stitch back to exactly that field's argmax."""
    height, width, classes = 700, 900, 4
    rng = np.random.default_rng(0)
    field = rng.random((classes, height, width)).astype(np.float32)
    field /= field.sum(0, keepdims=True)
    plan = plan_tiles(height, width, tile_size=256, overlap=48, stride=32)
    padded = np.pad(field, ((0, 0), (0, plan.padded_height - height), (0, plan.padded_width - width)))
    stitcher = Stitcher(plan, classes)
    for tile in plan.tiles:
        stitcher.add(tile, padded[:, tile.y0 : tile.y1, tile.x0 : tile.x1])
    result = stitcher.finish()
    assert np.array_equal(result.class_ids, field.argmax(0))
    expected_conf = np.clip(field.max(0) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(result.confidence.astype(int) - expected_conf).max() <= 1


def test_stitcher_refuses_to_finish_early():
    plan = plan_tiles(600, 600, tile_size=256, overlap=32)
    with pytest.raises(RuntimeError):
        Stitcher(plan, 2).finish()


def test_pad_and_cut():
    image = np.arange(50 * 40 * 3, dtype=np.uint8).reshape(50, 40, 3)
    plan = plan_tiles(50, 40, tile_size=512, overlap=64)
    padded = pad_image(image, plan)
    assert padded.shape == (64, 64, 3)
    assert np.array_equal(cut_tile(padded, plan.tiles[0])[:50, :40], image)
