import numpy as np
import pytest

from pipelines.segment import segment_with
from pipelines.tiling import (
    Stitcher,
    argmax_and_max,
    band_bytes,
    blend_window,
    pad_image,
    plan_tiles,
    tile_cut,
    tile_window,
    weigh,
)


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


@pytest.mark.parametrize("shape", [(700, 900), (1200, 1600), (513, 1700), (100, 37), (1500, 4000)])
def test_tile_windows_cover_every_pixel_at_least_once_and_are_flat_at_the_border(shape):
    """Neighbours' ramps add up to 1 and tiles ramp only towards each other, so every pixel's total
    weight is at least 1: no pixel is decided by a near-zero weight."""
    plan = plan_tiles(*shape, tile_size=512, overlap=64, stride=32)
    total = np.zeros((plan.padded_height, plan.padded_width), np.float64)
    for tile in plan.tiles:
        window = tile_window(tile_cut(tile, plan))
        total[tile.y0 : tile.y1, tile.x0 : tile.x1] += window
        if tile.y0 == 0:  # no ramp towards the top border: the first row is as the middle one
            assert np.array_equal(window[0], window[window.shape[0] // 2])
        if tile.x0 == 0:
            assert np.array_equal(window[:, 0], window[:, window.shape[1] // 2])
    inside = total[: shape[0], : shape[1]]
    assert inside.min() >= 1 - 1e-5
    assert total[0, 0] == 1 and total[shape[0] - 1, shape[1] - 1] == 1  # corners: one tile, flat


def _blend(field, plan):
    """The reference: float probabilities blended with the tiles' windows, Σ w·p / Σ w."""
    scores = np.zeros((field.shape[0], plan.padded_height, plan.padded_width), np.float64)
    weights = np.zeros((plan.padded_height, plan.padded_width), np.float64)
    padded = np.pad(field, ((0, 0), (0, plan.padded_height - field.shape[1]), (0, plan.padded_width - field.shape[2])))
    for tile in plan.tiles:
        window = tile_window(tile_cut(tile, plan))
        scores[:, tile.y0 : tile.y1, tile.x0 : tile.x1] += padded[:, tile.y0 : tile.y1, tile.x0 : tile.x1] * window
        weights[tile.y0 : tile.y1, tile.x0 : tile.x1] += window
    return (scores / weights)[:, : field.shape[1], : field.shape[2]]


def _stitch(field, plan, order=None):
    padded = np.pad(field, ((0, 0), (0, plan.padded_height - field.shape[1]), (0, plan.padded_width - field.shape[2])))
    stitcher = Stitcher(plan, field.shape[0])
    for i in order if order is not None else range(len(plan)):
        tile = plan.tiles[i]
        stitcher.add(tile, weigh(padded[:, tile.y0 : tile.y1, tile.x0 : tile.x1], tile_window(tile_cut(tile, plan))))
    return stitcher.finish()


@pytest.mark.parametrize("shape", [(700, 900), (900, 700)])
def test_stitching_a_known_field_matches_float_blending(shape):
    """Tiles of a known per-pixel probability field, weighted and quantized to uint8 as the model
    replica sends them, stitch to the class and confidence of exact float blending: identical
    classes wherever the top two differ by more than the quantization, confidence within 3/255 (0.5/255 on average)."""
    classes = 4
    rng = np.random.default_rng(0)
    field = rng.random((classes, *shape)).astype(np.float32) ** 3
    field /= field.sum(0, keepdims=True)
    plan = plan_tiles(*shape, tile_size=256, overlap=48, stride=32)
    result = _stitch(field, plan)
    exact = _blend(field, plan)
    top = np.sort(exact, axis=0)
    clear = top[-1] - top[-2] > 2 / 255
    assert clear.mean() > 0.95
    assert np.array_equal(result.class_ids[clear], exact.argmax(0)[clear])
    assert (result.class_ids == exact.argmax(0)).mean() > 0.99
    expected = np.floor(exact.max(0) * 255 + 0.5)
    assert np.abs(result.confidence.astype(int) - expected).max() <= 3
    assert np.abs(result.confidence.astype(int) - expected).mean() < 0.5


def test_tiles_overlapping_by_all_but_one_stride_still_match_float_blending():
    """Tile 576 with overlap 544: 18 × 18 tiles cover the middle pixels, each window a bump over
    the whole tile. (Their integer sums could only overflow 16 bits if every window were 1 there;
    the stitcher picks 32-bit integers where that bound is passed.)"""
    classes = 3
    rng = np.random.default_rng(5)
    field = rng.random((classes, 1200, 1200)).astype(np.float32) ** 3
    field /= field.sum(0, keepdims=True)
    plan = plan_tiles(1200, 1200, tile_size=576, overlap=544, stride=32)
    result = _stitch(field, plan)
    exact = _blend(field, plan)
    top = np.sort(exact, axis=0)
    clear = top[-1] - top[-2] > 2 / 255
    assert np.array_equal(result.class_ids[clear], exact.argmax(0)[clear])
    assert np.abs(result.confidence.astype(int) - np.floor(exact.max(0) * 255 + 0.5)).mean() < 0.5


def test_a_sure_tile_is_no_surer_for_its_small_classes_rounding_to_zero():
    """99 % for one class and 0.1 % for each of ten others: the others round to 0 in uint8, and
    the confidence is still 99 % (252/255, give or take the rounding in the blend ramps), not 100 %."""
    plan = plan_tiles(700, 900, tile_size=256, overlap=64, stride=32)
    field = np.full((11, 700, 900), 0.001, np.float32)
    field[3] = 0.99
    result = _stitch(field, plan)
    assert (result.class_ids == 3).all()
    assert result.confidence.min() >= 250 and result.confidence.max() <= 254
    assert abs(result.confidence.mean() - 252) < 0.5


def test_weighted_stitching_refuses_floats_and_wrong_shapes():
    plan = plan_tiles(300, 300, tile_size=256, overlap=32)
    stitcher = Stitcher(plan, 3)
    tile = plan.tiles[0]
    with pytest.raises(ValueError, match="uint8"):
        stitcher.add(tile, np.zeros((3, *tile.shape), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        stitcher.add(tile, np.zeros((4, *tile.shape), np.uint8))


def test_stitcher_refuses_to_finish_early():
    plan = plan_tiles(600, 600, tile_size=256, overlap=32)
    with pytest.raises(RuntimeError):
        Stitcher(plan, 2).finish()


def test_pad_and_cut():
    image = np.arange(50 * 40 * 3, dtype=np.uint8).reshape(50, 40, 3)
    plan = plan_tiles(50, 40, tile_size=512, overlap=64)
    padded = pad_image(image, plan)
    assert padded.shape == (64, 64, 3)
    assert np.array_equal(tile_cut(plan.tiles[0], plan).of(image), padded)
    assert np.array_equal(padded[:50, :40], image)


@pytest.mark.parametrize("shape", [(50, 40), (20, 700), (700, 20), (600, 900), (3, 3)])
def test_cutting_the_unpadded_image_equals_cutting_the_padded_one(shape):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    plan = plan_tiles(*shape, tile_size=256, overlap=32)
    padded = pad_image(image, plan)
    for tile in plan.tiles:
        assert np.array_equal(tile_cut(tile, plan).of(image), padded[tile.y0 : tile.y1, tile.x0 : tile.x1])


@pytest.mark.parametrize("shape", [(900, 700), (700, 900)])
def test_tiles_may_arrive_in_any_order(shape):
    """Integer sums do not depend on the order of the tiles: the result is identical."""
    classes = 3
    rng = np.random.default_rng(2)
    field = rng.random((classes, *shape)).astype(np.float32)
    field /= field.sum(0, keepdims=True)
    plan = plan_tiles(*shape, tile_size=256, overlap=64, stride=32)
    shuffled, in_order = _stitch(field, plan, rng.permutation(len(plan))), _stitch(field, plan)
    assert np.array_equal(shuffled.class_ids, in_order.class_ids) and np.array_equal(shuffled.confidence, in_order.confidence)


def colour_model(tiles):
    """A deterministic per-pixel "model": class probabilities from the pixel's own colour, so any
    correct tiling and stitching must reproduce exactly what it gives on the whole image at once.
    Integer channel values raised to the 16th power: classes either tie exactly (and go to the
    lower index everywhere) or differ by far more than uint8 quantization."""
    out = []
    for tile in tiles:
        rgb = tile.astype(np.float32)
        scores = (np.stack([rgb[..., 0], rgb[..., 1], rgb[..., 2], 255 - rgb.max(-1)]) / 255 + 1) ** 16
        out.append(scores / scores.sum(0, keepdims=True))
    return out


def weighted(model):
    """`model` as `segment_with` calls it: tiles and their windows in, weighted uint8 out."""
    return lambda tiles, windows: [weigh(p, w) for p, w in zip(model(tiles), windows, strict=True)]


def gradient_image(height, width):
    """Distinct colours everywhere, built in uint8 without full-size float temporaries."""
    rows = np.linspace(0, 255, height).astype(np.uint8)[:, None]
    cols = np.linspace(0, 255, width).astype(np.uint8)[None, :]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = rows
    image[..., 1] = cols
    np.add(rows * np.uint8(7), cols * np.uint8(3), out=image[..., 2])  # wraps modulo 256
    return image


@pytest.mark.slow  # a subprocess per shape, 10-20 s each
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
        cuts = [tile_cut(tile, plan) for tile in plan.tiles[start : start + in_flight]]
        for cut, probabilities in zip(cuts, colour_model([cut.of(image) for cut in cuts]), strict=True):
            stitcher.add(cut.tile, weigh(probabilities, cut.window()))
            peak = max(peak, stitcher.band_bytes)
    result = stitcher.finish()
    assert result.class_ids.shape == (height, width)
    expected = np.empty((height, width), np.uint8)
    for y in range(0, height, 2000):  # the whole-image answer, computed in slices to spare memory
        expected[y : y + 2000] = colour_model([image[y : y + 2000]])[0].argmax(0)
    assert np.array_equal(result.class_ids, expected)
    bound = band_bytes(plan, classes, in_flight)
    assert peak <= bound
    assert bound <= (in_flight + 1) * 512 * min(height, width) * (classes + 1) * 2  # independent of the length


def test_segment_with_batches_matches_one_tile_at_a_time():
    image = gradient_image(1300, 900)
    one = segment_with(weighted(colour_model), image, 256, 64, 32, num_classes=4, batch_size=1)
    many = segment_with(weighted(colour_model), image, 256, 64, 32, num_classes=4, batch_size=5)
    assert np.array_equal(one.class_ids, many.class_ids) and np.array_equal(one.confidence, many.confidence)


PEAK_RSS_SCRIPT = """
import resource, sys
import numpy as np
from pipelines.segment import segment_with
from tests.pipelines.test_tiling import colour_model, gradient_image, weighted
height, width, classes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = gradient_image(height, width)
predict = weighted(lambda tiles: [np.repeat(p, classes // 4, axis=0) for p in colour_model(tiles)])
result = segment_with(predict, image, 512, 64, 32, classes, batch_size=8)
print(before * 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


@pytest.mark.slow
def test_peak_memory_of_a_whole_long_scan_is_bounded_by_the_tiles_not_the_image():
    """The whole in-process run over a 1,500 × 40,000 scan with 12 classes, measured as the
    process's peak resident memory: the image and the two uint8 outputs, plus the stitcher's band
    and the tile batch, plus slack; the full float probability volume alone would be 2.9 GB."""
    import subprocess
    import sys

    height, width, classes = 40_000, 1_500, 12
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT, str(height), str(width), str(classes)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    baseline, peak = (int(v) for v in out.stdout.split())
    pixels = height * width
    plan = plan_tiles(height, width, 512, 64, 32)
    tile_batch = 8 * 512 * 512 * (3 + classes * 4 * 3)  # tiles, their probabilities and float temporaries
    bound = pixels * 3 + pixels * 2 + band_bytes(plan, classes, 8) + tile_batch + 150 * 2**20  # image, outputs, band, batch, slack
    assert peak - baseline <= bound, f"peak {(peak - baseline) / 2**20:.0f} MB over bound {bound / 2**20:.0f} MB"
    assert bound < 0.5 * pixels * classes * 4  # the bound is far below the probability volume


@pytest.mark.parametrize(("classes", "limit"), [(1, 255), (2, 2295), (12, 2295), (16, 4095), (12, 8000), (17, 2295), (256, 65535)])
def test_argmax_and_max_agree_with_numpy(classes, limit):
    rng = np.random.default_rng(classes)
    scores = rng.integers(0, limit + 1, (classes, 40, 30)).astype(np.uint16)
    scores[:, 0, 0] = 0  # all-zero pixel
    scores[:, 1, 1] = limit // 2  # an exact tie goes to the lowest class, as with numpy's argmax
    scores[classes // 2 :, 2, 2] = limit  # the highest there is
    ids, best = argmax_and_max(scores[:, :, :25], limit)  # a strided view, as the stitcher's band is
    view = scores[:, :, :25]
    assert ids.dtype == np.uint8
    assert ids[0, 0] == ids[1, 1] == 0 and ids[2, 2] == classes // 2
    assert np.array_equal(ids, view.argmax(axis=0))
    assert np.array_equal(best, view.max(axis=0))


def test_argmax_and_max_refuses_more_classes_than_uint8_holds():
    with pytest.raises(ValueError, match="256"):
        argmax_and_max(np.zeros((257, 2, 2), np.uint16), 255)
