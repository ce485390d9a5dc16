import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pipelines.decode import decode_image, probe_image
from pipelines.errors import EmptyUploadError, ImageTooLargeError, UnsupportedImageError
from tests.conftest import encode

LIMIT = 50_000_000


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height zeros: tiny on disk, huge when decoded."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def test_probe_reads_format_and_size(core_jpeg):
    info = probe_image(core_jpeg, LIMIT)
    assert (info.format, info.width, info.height) == ("JPEG", 154, 1600)


@pytest.mark.parametrize("data", [b"hello, world", b"%PDF-1.4 not an image", b"\x89PNG\r\n\x1a\n"])
def test_probe_refuses_non_images(data):
    with pytest.raises(UnsupportedImageError):
        probe_image(data, LIMIT)


def test_probe_refuses_empty():
    with pytest.raises(EmptyUploadError):
        probe_image(b"", LIMIT)


def test_probe_refuses_truncated_jpeg(core_jpeg):
    with pytest.raises(UnsupportedImageError, match="truncated"):
        probe_image(core_jpeg[: len(core_jpeg) // 2], LIMIT)


def test_probe_refuses_truncated_png():
    data = encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(UnsupportedImageError):
        probe_image(data[: len(data) - 40], LIMIT)


def test_probe_refuses_decompression_bomb_before_decoding():
    bomb = bomb_png(20_000, 20_000)
    assert len(bomb) < 200_000
    with pytest.raises(ImageTooLargeError, match="400,000,000 pixels"):
        probe_image(bomb, LIMIT)
    with pytest.raises(ImageTooLargeError):
        decode_image(bomb, LIMIT)


def test_probe_refuses_gif():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="GIF")
    with pytest.raises(UnsupportedImageError, match="GIF"):
        probe_image(buffer.getvalue(), LIMIT)


def test_decode_png_roundtrip_is_exact():
    array = np.random.default_rng(1).integers(0, 255, (33, 47, 3), dtype=np.uint8)
    assert np.array_equal(decode_image(encode(array), LIMIT), array)


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "WEBP"])
def test_decode_other_lossless_formats(fmt):
    array = np.random.default_rng(2).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    params = {"lossless": True} if fmt == "WEBP" else {}
    assert np.array_equal(decode_image(encode(array, fmt, **params), LIMIT), array)


def test_decode_greyscale_and_16_bit():
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = decode_image(encode(grey), LIMIT)
    assert out.shape == (16, 16, 3) and np.array_equal(out[..., 0], grey)
    deep = (grey.astype(np.uint16) * 257)
    out16 = decode_image(encode(deep), LIMIT)
    assert np.array_equal(out16[..., 1], grey)


def test_decode_alpha_composites_over_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    out = decode_image(encode(rgba), LIMIT)
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[3, 0]) == (255, 255, 255)


def test_decode_applies_exif_orientation():
    array = np.zeros((10, 20, 3), np.uint8)
    array[0, 0] = (255, 0, 0)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    info = probe_image(buffer.getvalue(), LIMIT)
    out = decode_image(buffer.getvalue(), LIMIT)
    assert (info.width, info.height) == (10, 20)
    assert out.shape == (20, 10, 3)
    assert tuple(out[0, -1]) == (255, 0, 0)
