import io

import numpy as np
import pytest
from PIL import Image

from pipelines import png
from pipelines.png import SIGNATURE, PngWriter, encode_png
from training.synthetic import generate_sample


def decoded(data: bytes) -> Image.Image:
    Image.open(io.BytesIO(data)).verify()  # chunk CRCs and structure
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (37, 53), (37, 53, 3), (1, 1, 3), (300, 41, 3)])
def test_round_trip_through_pillow_is_exact(shape):
    array = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    image = decoded(encode_png(array))
    assert image.mode == ("L" if len(shape) == 2 else "RGB")
    assert np.array_equal(np.asarray(image), array)


def test_strips_of_any_height_and_many_idat_chunks_give_the_same_pixels(monkeypatch):
    array = np.random.default_rng(1).integers(0, 256, (601, 229, 3), dtype=np.uint8)
    monkeypatch.setattr(png, "IDAT_BYTES", 100)
    writer = PngWriter(601, 229, 3)
    for start, stop in ((0, 1), (1, 2), (2, 300), (300, 300), (300, 601)):
        writer.write(array[start:stop])
    data = writer.finish()
    assert data.count(b"IDAT") > 2
    assert np.array_equal(np.asarray(decoded(data)), array)


def test_wrapping_differences_survive_the_up_filter():
    array = np.array([[255, 0, 255], [0, 255, 1], [1, 0, 0]], np.uint8)  # every step wraps modulo 256
    assert np.array_equal(np.asarray(decoded(encode_png(array))), array)


def test_compresses_a_core_photo_at_least_as_well_as_pillow():
    image = generate_sample(50_000_000, height=512, width=512).image
    ours = encode_png(image)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    assert ours[:8] == SIGNATURE
    assert len(ours) <= 1.05 * len(buffer.getvalue())


@pytest.mark.parametrize(
    ("rows", "message"),
    [(np.zeros((2, 4), np.uint16), "uint8"), (np.zeros((2, 5), np.uint8), "shape"), (np.zeros((5, 4), np.uint8), "more than")],
)
def test_refuses_rows_that_do_not_fit(rows, message):
    writer = PngWriter(4, 4, 1)
    with pytest.raises(ValueError, match=f"(?i){message}"):
        writer.write(rows)


def test_refuses_to_finish_early_and_odd_channel_counts():
    writer = PngWriter(4, 4, 1)
    writer.write(np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match="3 of 4 rows"):
        writer.finish()
    with pytest.raises(ValueError, match="1 or 3 channels"):
        PngWriter(4, 4, 4)
