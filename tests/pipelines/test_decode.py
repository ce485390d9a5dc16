import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pipelines.decode import RawSpec, check_raw, decode_image, decode_raw, demosaic_rggb, probe_image, sniff_format
from pipelines.errors import EmptyUploadError, ImageTooLargeError, InputError, InvalidParameterError, UnsupportedImageError
from tests.conftest import DATA, encode

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


def test_an_unreadable_upload_is_told_what_it_is_a_damaged_photo_or_no_image(core_jpeg):
    """The 415's sentence says what to do: a file that starts like a supported format is damaged,
    anything else is no image."""
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    damaged_png = png.getvalue()[:12] + b"XXXX" + png.getvalue()[16:]  # the IHDR chunk's type overwritten
    heic_header = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)  # an ftyp box and nothing after it
    cases = {
        damaged_png: "starts like a PNG file but cannot be read: it is damaged",
        core_jpeg[:2] + b"\xff" + bytes(40): "starts like a JPEG file",
        heic_header: "starts like a HEIF file",
        b"\x00\x00\x00\x1cftypavif" + bytes(64): "starts like an AVIF file",
        b"hello, world": "is not an image lithoseg can read",
    }
    for data, expected in cases.items():
        for read in (probe_image, decode_image):
            with pytest.raises(UnsupportedImageError, match=expected):
                read(data, LIMIT)
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP" and sniff_format(b"GIF89a") is None


def test_a_phone_heic_is_decoded_like_the_photo_it_was_made_from():
    """HEIC, what iPhones save by default, decodes to the pixels of the JPEG it was encoded from
    (libheif's HEVC at quality 80); a 10-bit HEIC spans the full 8-bit range; a truncated one is
    refused with a sentence."""
    heic = (DATA / "corepy_3978_crop.heic").read_bytes()
    info = probe_image(heic, LIMIT)
    assert (info.format, info.width, info.height) == ("HEIF", 320, 240)
    source = np.asarray(Image.open(DATA / "corepy_3978.jpg").convert("RGB").crop((0, 0, 320, 240)), dtype=np.int16)
    decoded = decode_image(heic, LIMIT)
    assert decoded.shape == (240, 320, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(np.int16) - source).mean() < 3.0
    gradient = decode_image((DATA / "grey_gradient_10bit.heic").read_bytes(), LIMIT)[..., 0]
    assert gradient[0, :8].max() <= 2 and gradient[-1, -8:].min() >= 253  # rescaled from 10 bits, not clipped or left dark
    assert np.all(np.diff(gradient[:, 0].astype(int)) >= -2)  # it still rises row by row
    for read in (probe_image, decode_image):
        with pytest.raises(UnsupportedImageError, match="HEIF file is damaged or truncated"):
            read(heic[: len(heic) // 2], LIMIT)
    with pytest.raises(ImageTooLargeError):
        probe_image(heic, 320 * 240 - 1)


def test_an_avif_is_decoded():
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(rgb).resize((16, 12)).resize((64, 48), Image.Resampling.BILINEAR))
    data = encode(smooth, "AVIF", quality=95)
    assert sniff_format(data) == "AVIF" and probe_image(data, LIMIT).format == "AVIF"
    assert np.abs(decode_image(data, LIMIT).astype(np.int16) - smooth).mean() < 4.0


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
    deep = grey.astype(np.uint16) * 257
    out16 = decode_image(encode(deep), LIMIT)
    assert np.array_equal(out16[..., 1], grey)


@pytest.mark.parametrize(
    "mode,peak,white",
    [("I", 4095, 65535), ("I", 1_000_000, 2**20 - 1), ("F", 1.0, 1.0), ("F", 200.0, 255), ("F", 60_000.0, 65535), ("F", 3.0e6, 2**22 - 1)],
)
def test_deep_single_channel_data_is_rescaled_by_the_bits_it_uses_never_clipped_to_white(mode, peak, white):
    ramp = np.linspace(0, peak, 64).reshape(8, 8)
    data = _save(Image.fromarray(ramp.astype(np.int32 if mode == "I" else np.float32), mode=mode), "TIFF")
    out = decode_image(data, LIMIT)
    expected = np.clip(np.round(ramp / white * 255), 0, 255)
    assert np.abs(out[..., 0].astype(int) - expected).max() <= 1
    assert out[..., 0].max() < 255 or peak == white  # the brightest value is white only at the scale's top


def test_float_data_with_nan_and_infinities_decodes_around_its_finite_values():
    values = np.array([[0.0, 0.5, np.nan, np.inf], [-np.inf, 0.25, 1.0, 0.75]], np.float32)
    out = decode_image(_save(Image.fromarray(values, mode="F"), "TIFF"), LIMIT)[..., 0]
    assert out.tolist() == [[0, 128, 0, 255], [0, 64, 255, 191]]


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


# -- every mode and orientation ------------------------------------------------------------------


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _mode_cases():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    rgb = np.stack([grey, 255 - grey, np.full_like(grey, 77)], axis=-1)
    palette = Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    la = Image.fromarray(np.stack([grey, np.full_like(grey, 255)], axis=-1), mode="LA")
    i16 = Image.fromarray(grey.astype(np.uint16) * 257)  # mode I;16
    cmyk = Image.fromarray(rgb).convert("CMYK")
    return [
        ("L png", _save(Image.fromarray(grey), "PNG"), np.repeat(grey[..., None], 3, -1), 0),
        ("LA png", _save(la, "PNG"), np.repeat(grey[..., None], 3, -1), 0),
        ("P png", _save(palette, "PNG"), np.asarray(palette.convert("RGB")), 0),
        ("RGBA png", _save(Image.fromarray(np.dstack([rgb, np.full_like(grey, 255)])), "PNG"), rgb, 0),
        ("I;16 png", _save(i16, "PNG"), np.repeat(grey[..., None], 3, -1), 0),
        ("I;16 tiff", _save(i16, "TIFF"), np.repeat(grey[..., None], 3, -1), 0),
        ("CMYK tiff", _save(cmyk, "TIFF"), rgb, 1),
        ("CMYK jpeg", _save(cmyk, "JPEG", quality=100), rgb, 12),
    ]


@pytest.mark.parametrize("name,data,expected,tolerance", _mode_cases(), ids=[c[0] for c in _mode_cases()])
def test_every_mode_decodes_to_the_expected_8_bit_rgb(name, data, expected, tolerance):
    out = decode_image(data, LIMIT)
    assert out.dtype == np.uint8 and out.shape == expected.shape
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= tolerance


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(orientation):
    """A 2 × 3 image with distinct pixels, tagged with each EXIF orientation, decodes to what
    Pillow's reference transpose gives (orientations 5–8 swap width and height)."""
    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 12
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    data = _save(image, "PNG", exif=exif)
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    expected = transforms[orientation](array)
    assert np.array_equal(decode_image(data, LIMIT), expected)
    info = probe_image(data, LIMIT)
    assert (info.height, info.width) == expected.shape[:2]


# -- raw pixel buffers ---------------------------------------------------------------------------


def test_raw_rgb8_and_l8_round_trip():
    rgb = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(decode_raw(rgb.tobytes(), RawSpec(7, 5, "rgb8"), LIMIT), rgb)
    grey = rgb[..., 0].copy()
    assert np.array_equal(decode_raw(grey.tobytes(), RawSpec(7, 5, "l8"), LIMIT), np.repeat(grey[..., None], 3, -1))


def test_bayer_rggb_demosaics_a_flat_colour_exactly():
    colour = (200, 120, 40)
    mosaic = np.zeros((2100, 6), np.uint8)  # tall enough to cross the strips the demosaicer works in
    mosaic[0::2, 0::2] = colour[0]
    mosaic[0::2, 1::2] = colour[1]
    mosaic[1::2, 0::2] = colour[1]
    mosaic[1::2, 1::2] = colour[2]
    out = decode_raw(mosaic.tobytes(), RawSpec(6, 2100, "bayer_rg8"), LIMIT)
    assert out.shape == (2100, 6, 3)
    assert np.all(out == np.array(colour, np.uint8))


def test_bayer_demosaic_in_strips_equals_one_pass():
    from pipelines.decode import _demosaic_strip

    mosaic = np.random.default_rng(1).integers(0, 255, (2500, 10), dtype=np.uint8)
    assert np.array_equal(demosaic_rggb(mosaic), _demosaic_strip(mosaic))


@pytest.mark.parametrize(
    "size,spec,error",
    [
        (100, RawSpec(10, 10, "rgb8"), InvalidParameterError),  # 300 bytes expected
        (301, RawSpec(10, 10, "rgb8"), InvalidParameterError),
        (0, RawSpec(10, 10, "l8"), EmptyUploadError),
        (4, RawSpec(1, 4, "bayer_rg8"), InvalidParameterError),
        (3, RawSpec(1, 1, "rgb16"), InvalidParameterError),
        (3 * 10**8, RawSpec(10**4, 10**4, "rgb8"), ImageTooLargeError),
    ],
)
def test_raw_buffers_are_checked_against_their_byte_count(size, spec, error):
    with pytest.raises(error):
        check_raw(size, spec, LIMIT)


def _formats() -> dict[str, bytes]:
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    options = {"JPEG": {}, "PNG": {}, "TIFF": {"compression": "tiff_lzw"}, "BMP": {}, "WEBP": {}, "AVIF": {}}
    files = {"HEIF": (DATA / "corepy_3978_crop.heic").read_bytes()}  # Pillow cannot write HEIC
    for fmt, kwargs in options.items():
        buffer = io.BytesIO()
        image.save(buffer, fmt, **kwargs)
        files[fmt] = buffer.getvalue()
    return files


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damaged TIFF headers it reads
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "BMP", "WEBP", "HEIF", "AVIF"])
def test_cut_or_damaged_files_are_input_errors_never_crashes(fmt):
    """Every cut point and a few hundred random byte changes: the file decodes, or the probe or
    the decode says why in an InputError (a 4xx); no other exception (a 500) gets out."""
    data = _formats()[fmt]
    rng = np.random.default_rng(4)
    variants = [data[:n] for n in range(1, len(data), max(1, len(data) // 150))]
    for _ in range(200):
        damaged = bytearray(data)
        for position in rng.integers(0, len(damaged), 3):
            damaged[position] = int(rng.integers(0, 256))
        variants.append(bytes(damaged))
    for variant in variants:
        try:
            probe_image(variant, LIMIT)
            decoded = decode_image(variant, LIMIT)
        except InputError:
            continue
        assert decoded.dtype == np.uint8 and decoded.ndim == 3 and decoded.shape[2] == 3
