"""Hypothesis strategies for hostile image files: real encoders' output in every mode and format
the service takes (and some it does not), then damaged: cut short, bytes flipped after the
header, a header that declares huge dimensions, oversized EXIF blocks, several frames."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from hypothesis import strategies as st
from PIL import Image

FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "AVIF", "GIF")  # HEIC: Pillow cannot write it
MODES = ("1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I", "F", "CMYK")
# modes each format can write (Pillow); others are converted first
WRITABLE = {
    "PNG": {"1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I"},
    "JPEG": {"L", "RGB", "CMYK"},
    "TIFF": {"1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I", "F", "CMYK"},
    "BMP": {"1", "L", "P", "RGB"},
    "WEBP": {"RGB", "RGBA"},
    "AVIF": {"RGB", "RGBA"},
    "GIF": {"L", "P"},
}


def _image(mode: str, width: int, height: int, seed: int, palette_size: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if mode == "P":
        return image.quantize(colors=palette_size)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16), "I;16")
    if mode == "I":
        return Image.fromarray(rng.integers(-(2**31), 2**31 - 1, (height, width), dtype=np.int32), "I")
    if mode == "F":
        values = rng.normal(0, 1e6, (height, width)).astype(np.float32)
        values[0, 0] = np.nan
        return Image.fromarray(values, "F")
    return image.convert(mode)


def encode(image: Image.Image, fmt: str, exif_bytes: int, frames: int) -> bytes:
    mode = image.mode if image.mode in WRITABLE[fmt] else ("RGB" if fmt != "GIF" else "P")
    image = image if image.mode == mode else image.convert(mode)
    out = io.BytesIO()
    params: dict[str, object] = {}
    if exif_bytes and fmt in ("JPEG", "PNG", "TIFF", "WEBP", "AVIF"):
        exif = Image.Exif()
        exif[0x010E] = "x" * exif_bytes  # ImageDescription: a large EXIF block
        exif[0x0112] = 6  # orientation: rotated
        params["exif"] = exif.tobytes()
    if frames > 1 and fmt in ("TIFF", "GIF", "WEBP", "PNG"):
        params["save_all"] = True
        params["append_images"] = [image.rotate(90 * i) for i in range(1, frames)]
    image.save(out, fmt, **params)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares `width` x `height` but whose one IDAT holds a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@st.composite
def valid_images(draw: st.DrawFn, max_side: int = 96) -> bytes:
    fmt = draw(st.sampled_from(FORMATS))
    mode = draw(st.sampled_from(MODES))
    width = draw(st.integers(1, max_side))
    height = draw(st.integers(1, max_side))
    image = _image(mode, width, height, draw(st.integers(0, 2**16)), draw(st.integers(1, 256)))
    exif = draw(st.sampled_from((0, 0, 200, 60_000)))
    frames = draw(st.sampled_from((1, 1, 1, 3)))
    return encode(image, fmt, exif, frames)


@st.composite
def damaged(draw: st.DrawFn, files: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(files))
    how = draw(st.sampled_from(("truncate", "flip", "both")))
    if how in ("flip", "both") and len(data) > 32:
        for _ in range(draw(st.integers(1, 16))):
            at = draw(st.integers(min(24, len(data) - 1), len(data) - 1))  # past the signature
            data[at] ^= draw(st.integers(1, 255))
    if how in ("truncate", "both") and len(data) > 1:
        data = data[: draw(st.integers(1, len(data) - 1))]
    return bytes(data)


def hostile_images(max_side: int = 96) -> st.SearchStrategy[bytes]:
    """Valid files, damaged ones, headers declaring absurd sizes, and bytes that are no image."""
    valid = valid_images(max_side)
    return st.one_of(
        valid,
        damaged(valid),
        st.builds(png_declaring, st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1)),
        st.binary(min_size=0, max_size=512),
    )
