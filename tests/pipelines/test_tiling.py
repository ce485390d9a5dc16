import numpy as np
import pytest

from pipelines.segment import segment_with
from pipelines.tiling import Stitcher, argmax_and_max, band_bytes, blend_window, cut_tile, pad_image, plan_tiles


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
    assert np.array_equal(cut_tile(image, plan.tiles[0], plan), padded)
    assert np.array_equal(padded[:50, :40], image)


@pytest.mark.parametrize("shape", [(50, 40), (20, 700), (700, 20), (600, 900), (3, 3)])
def test_cutting_the_unpadded_image_equals_cutting_the_padded_one(shape):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    plan = plan_tiles(*shape, tile_size=256, overlap=32)
    padded = pad_image(image, plan)
    for tile in plan.tiles:
        assert np.array_equal(cut_tile(image, tile, plan), padded[tile.y0 : tile.y1, tile.x0 : tile.x1])


def test_tiles_may_arrive_in_any_order():
    height, width, classes = 900, 700, 3
    rng = np.random.default_rng(2)
    field = rng.random((classes, height, width)).astype(np.float32)
    plan = plan_tiles(height, width, tile_size=256, overlap=64, stride=32)
    stitcher = Stitcher(plan, classes)
    for i in rng.permutation(len(plan)):
        tile = plan.tiles[i]
        stitcher.add(tile, field[:, tile.y0 : tile.y1, tile.x0 : tile.x1])
    assert np.array_equal(stitcher.finish().class_ids, field.argmax(0))


def colour_model(tiles):
    """A deterministic per-pixel "model": class scores from the pixel's own colour, so any correct
    tiling and stitching must reproduce exactly what it gives on the whole image at once."""
    out = []
    for tile in tiles:
        rgb = tile.astype(np.float32)
        scores = np.stack([rgb[..., 0], rgb[..., 1], rgb[..., 2], 255 - rgb.mean(-1)]) + 1
        out.append(scores / scores.sum(0, keepdims=True))
    return out


def gradient_image(height, width):
    """Distinct colours everywhere, built in uint8 without full-size float temporaries."""
    rows = np.linspace(0, 255, height).astype(np.uint8)[:, None]
    cols = np.linspace(0, 255, width).astype(np.uint8)[None, :]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = rows
    image[..., 1] = cols
    np.add(rows * np.uint8(7), cols * np.uint8(3), out=image[..., 2])  # wraps modulo 256
    return image


@pytest.mark.parametrize("shape", [(40000, 1500), (1500, 40000), (10000, 10000)])
def test_long_scans_and_100_megapixels_stitch_at_full_resolution_in_bounded_memory(shape):
    """A 1,500 × 40,000 scan (both ways up) and a 100-megapixel image: the stitched mask is the
    full-resolution per-pixel answer, and the float band the stitcher holds is bounded by the tiles
    in flight (8 here), far below the full probability volume (4.8 GB at 100 MP with 12 classes)."""
    height, width = shape
    image = gradient_image(height, width)
    plan = plan_tiles(height, width, 512, 64, 32)
    in_flight, classes = 8, 4
    stitcher = Stitcher(plan, classes)
    peak = 0
    for start in range(0, len(plan), in_flight):
        batch = plan.tiles[start : start + in_flight]
        for tile, probabilities in zip(batch, colour_model([cut_tile(image, t, plan) for t in batch]), strict=True):
            stitcher.add(tile, probabilities)
            peak = max(peak, stitcher.band_bytes)
    result = stitcher.finish()
    assert result.class_ids.shape == (height, width)
    expected = np.empty((height, width), np.uint8)
    for y in range(0, height, 2000):  # the whole-image answer, computed in slices to spare memory
        expected[y : y + 2000] = colour_model([image[y : y + 2000]])[0].argmax(0)
    assert np.array_equal(result.class_ids, expected)
    bound = band_bytes(plan, classes, in_flight)
    assert peak <= bound
    assert bound <= (in_flight + 1) * 512 * min(height, width) * (classes + 1) * 4  # independent of the length


def test_segment_with_batches_matches_one_tile_at_a_time():
    image = gradient_image(1300, 900)
    one = segment_with(colour_model, image, 256, 64, 32, num_classes=4, batch_size=1)
    many = segment_with(colour_model, image, 256, 64, 32, num_classes=4, batch_size=5)
    assert np.array_equal(one.class_ids, many.class_ids) and np.array_equal(one.confidence, many.confidence)


PEAK_RSS_SCRIPT = """
import resource, sys
import numpy as np
from pipelines.segment import segment_with
from tests.pipelines.test_tiling import colour_model, gradient_image
height, width, classes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = gradient_image(height, width)
result = segment_with(lambda tiles: [np.repeat(p, classes // 4, axis=0) for p in colour_model(tiles)], image, 512, 64, 32, classes, batch_size=8)
print(before * 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def test_peak_memory_of_a_whole_long_scan_is_bounded_by_the_tiles_not_the_image():
    """The whole in-process run over a 1,500 × 40,000 scan with 12 classes, measured as the
    process's peak resident memory: the image and the two uint8 outputs, plus the stitcher's band
    and the tile batch, plus slack; the full float probability volume alone would be 2.9 GB."""
    import subprocess
    import sys

    height, width, classes = 40_000, 1_500, 12
    out = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT, str(height), str(width), str(classes)], capture_output=True, text=True, check=True, timeout=600)
    baseline, peak = (int(v) for v in out.stdout.split())
    pixels = height * width
    plan = plan_tiles(height, width, 512, 64, 32)
    tile_batch = 8 * 512 * 512 * (3 + classes * 4 * 3)  # tiles, their probabilities and float temporaries
    bound = pixels * 3 + pixels * 2 + band_bytes(plan, classes, 8) + tile_batch + 150 * 2**20  # image, outputs, band, batch, slack
    assert peak - baseline <= bound, f"peak {(peak - baseline) / 2**20:.0f} MB over bound {bound / 2**20:.0f} MB"
    assert bound < 0.5 * pixels * classes * 4  # the bound is far below the probability volume


def test_quantized_probabilities_stitch_like_float_ones():
    height, width, classes = 700, 500, 5
    rng = np.random.default_rng(4)
    field = rng.random((classes, height, width)).astype(np.float32) ** 4
    field /= field.sum(0, keepdims=True)
    plan = plan_tiles(height, width, tile_size=256, overlap=64, stride=32)
    exact, quantized = Stitcher(plan, classes), Stitcher(plan, classes)
    for tile in plan.tiles:
        part = field[:, tile.y0 : tile.y1, tile.x0 : tile.x1]
        exact.add(tile, part)
        quantized.add(tile, np.round(part * 255).astype(np.uint8))
    a, b = exact.finish(), quantized.finish()
    assert (a.class_ids == b.class_ids).mean() > 0.99
    assert np.abs(a.confidence.astype(int) - b.confidence.astype(int)).max() <= 1


@pytest.mark.parametrize("classes", [1, 2, 12, 16, 17, 256])
def test_argmax_and_max_agree_with_numpy(classes):
    rng = np.random.default_rng(classes)
    scores = rng.random((classes, 40, 30), dtype=np.float32) * 3
    scores[:, 0, 0] = 0.0  # all-zero pixel
    scores[:, 1, 1] = 1.5  # an exact tie goes to the lowest class, as with numpy's argmax
    scores[classes // 2 :, 2, 2] = 5.0  # above every random score
    ids, best = argmax_and_max(scores[:, :, :25])  # a strided view, as the stitcher's band is
    assert ids[0, 0] == ids[1, 1] == 0 and ids[2, 2] == classes // 2
    view = scores[:, :, :25]
    top = np.sort(view, axis=0)
    distinct = top[-1] - (top[-2] if classes > 1 else 0) > top[-1] * 2**-14  # beyond the bits given up
    assert ids.dtype == np.uint8
    assert np.array_equal(ids[distinct], view.argmax(axis=0)[distinct])
    assert distinct.mean() > 0.9
    assert best[0, 0] == 0.0
    assert np.allclose(best, scores[:, :, :25].max(axis=0), rtol=2**-14)


def test_argmax_and_max_refuses_more_classes_than_uint8_holds():
    with pytest.raises(ValueError, match="256"):
        argmax_and_max(np.zeros((257, 2, 2), np.float32))
