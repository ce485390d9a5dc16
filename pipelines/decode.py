"""Image bytes → RGB arrays: the cheap probe at submit time and the full decode in the pipeline.

`probe_image` reads only what it must to refuse bad uploads at once: the format, the size from the
header (checked against the pixel limit before any pixel is decoded, which stops decompression
bombs), and, for JPEG, a reduced-size decode of the whole stream so a truncated file is caught.
`decode_image` applies EXIF orientation and converts every supported mode to 8-bit RGB.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pi_heif
from PIL import Image, UnidentifiedImageError

from pipelines.errors import EmptyUploadError, ImageTooLargeError, InputError, InvalidParameterError, UnsupportedImageError
from pipelines.png import SIGNATURE as PNG_SIGNATURE
from pipelines.strips import strip_rows

SUPPORTED_FORMATS = ("JPEG", "MPO", "PNG", "TIFF", "BMP", "WEBP", "HEIF", "AVIF")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".heic", ".heif", ".avif")  # of photos read from folders
FILE_MAX_PIXELS = 200_000_000  # a photo read from disk to train, evaluate or build a gate bank
_TRANSPARENT_FILL = (255, 255, 255)  # where an image has alpha, it is shown over white
# what Pillow raises on a damaged or cut-short file of a format it knows (its AVIF decoder: RuntimeError)
DAMAGED_FILE_ERRORS = (OSError, SyntaxError, ValueError, RuntimeError, struct.error)

# lithoseg enforces its own pixel limit before decoding; Pillow's global one would only warn at
# a different threshold.
Image.MAX_IMAGE_PIXELS = None

# HEIC/HEIF, what phones save photos as by default, read through Pillow by libheif (pi-heif: the
# decode-only build of pillow-heif). libheif shows the primary image upright from the file's own
# rotation and mirror boxes, as HEIF requires, and pi-heif sets the EXIF orientation it passes on to
# 1 so that it is not applied twice. Thumbnails, depth maps and other auxiliary images are not read.
pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


@dataclass(frozen=True)
class ImageInfo:
    """What probing an upload tells: format, displayed size and mode."""

    format: str
    width: int
    height: int
    mode: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


# EXIF orientation -> the transposition that shows the image upright (as ImageOps.exif_transpose)
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


SEND = "send JPEG, PNG, TIFF, BMP, WebP, HEIC or AVIF"
# the first bytes of the formats lithoseg reads, to tell a damaged photo from something else
SIGNATURES = ((PNG_SIGNATURE, "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"))
# major brands of ISO base-media files: HEIF images (what iPhones save photos as) and AVIF
ISOBMFF_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"), "HEIF"),
    **dict.fromkeys((b"avif", b"avis"), "AVIF"),
}


def sniff_format(data: bytes) -> str | None:
    """The supported format the first bytes announce, or None: for the message of an upload
    Pillow cannot open."""
    if data[4:8] == b"ftyp":
        return ISOBMFF_BRANDS.get(data[8:12])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for signature, name in SIGNATURES if data.startswith(signature)), None)


def _unidentified(data: bytes) -> UnsupportedImageError:
    """Why Pillow could not identify an upload, in words that tell the sender what to do."""
    announced = sniff_format(data)
    if announced is not None:
        article = "an" if announced == "AVIF" else "a"
        return UnsupportedImageError(
            f"The upload starts like {article} {announced} file but cannot be read: it is damaged; send the whole, undamaged file."
        )
    return UnsupportedImageError(f"The upload is not an image lithoseg can read; {SEND}.")


def _open(data: bytes) -> Image.Image:
    if not data:
        raise EmptyUploadError("The uploaded file is empty.")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise _unidentified(data) from exc
    except DAMAGED_FILE_ERRORS as exc:  # a known format, its header cut short or damaged
        raise UnsupportedImageError("The image's header is damaged or cut short, so it cannot be decoded; send the whole file.") from exc
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedImageError(f"{image.format} images are not supported; {SEND}.")
    return image


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise UnsupportedImageError("The image has no pixels.")
    if width * height > max_pixels:
        raise ImageTooLargeError(f"The image is {width} x {height} = {width * height:,} pixels; the limit is {max_pixels:,} pixels.")


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1, as stored, when there is none). For PNG, only an eXIf chunk
    before the pixels is read: Pillow's getexif() would inflate the whole image to look for one
    after them."""
    if image.format == "PNG":
        exif = Image.Exif()
        if "exif" in image.info:
            exif.load(image.info["exif"])
    else:
        exif = image.getexif()
    value = exif.get(0x0112, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    """Width and height as displayed."""
    width, height = image.size
    return (height, width) if _orientation(image) in (5, 6, 7, 8) else (width, height)


def probe_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Validate an upload without a full decode. Raises an `InputError` subclass if it is unusable."""
    image = _open(data)
    try:
        _check_pixels(image.width, image.height, max_pixels)  # before anything inflates pixels
        width, height = _oriented_size(image)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if image.format in ("JPEG", "MPO"):
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
            elif image.format == "PNG":
                # verify() walks every chunk and checks its CRC without inflating pixels; it must
                # run on a freshly opened file (reading EXIF above moved the stream on)
                Image.open(io.BytesIO(data)).verify()
            else:
                image.load()
    except (*DAMAGED_FILE_ERRORS, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsupportedImageError(f"The {image.format} file is damaged or truncated and cannot be decoded.") from exc
    return ImageInfo(image.format or "", width, height, image.mode)


def full_scale(peak: float, floating: bool = False) -> float:
    """The white level of single-channel data whose brightest value is `peak`: 1 for float data
    in 0-1, else 255 or 65535 when the values fit 8 or 16 bits, else the largest value of the
    fewest bits that hold them (12-20-bit sensor data kept in a 32-bit container is common), so
    that deep data is rescaled, never clipped to white."""
    if floating and peak <= 1.0:
        return 1.0
    if peak <= 255:
        return 255.0
    if peak <= 65535:
        return 65535.0
    return float(2 ** math.ceil(math.log2(peak + 1)) - 1)


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → (H, W, 3) uint8 RGB. 16-bit, 32-bit integer and float data are rescaled
    by `full_scale`, not clipped."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        raw = np.asarray(image, dtype=np.float64)
        peak = float(raw.max(initial=0, where=np.isfinite(raw)))  # a float TIFF may hold NaN or infinities; no copy of the pixels
        values = np.nan_to_num(raw, nan=0.0, posinf=peak, neginf=0.0)
        top = 65535.0 if mode.startswith("I;16") else full_scale(peak, floating=mode == "F")
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_TRANSPARENT_FILL, 255))
        return rgb_array(Image.alpha_composite(background, rgba).convert("RGB"))
    # convert() copies even when the mode is already RGB
    return rgb_array(image if image.mode == "RGB" else image.convert("RGB"))


def rgb_array(image: Image.Image) -> np.ndarray:
    """An RGB Pillow image's pixels as (H, W, 3) uint8, copied strip by strip: np.asarray(image)
    goes through tobytes(), which holds the pixels twice more while it joins its chunks (540 MB
    at peak for a 180 MB scan instead of 180)."""
    out = np.empty((image.height, image.width, 3), np.uint8)
    for rows in strip_rows(image.height, image.width):
        out[rows] = np.asarray(image.crop((0, rows.start, image.width, rows.stop)))
    return out


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode to (H, W, 3) uint8 RGB with EXIF orientation applied."""
    image = _open(data)
    try:
        _check_pixels(image.width, image.height, max_pixels)
        # Read before load(): once a TIFF is loaded, Pillow's getexif() no longer sees its
        # Orientation tag (found by tests/chaos: probe and decode disagreed on the size).
        orientation = _orientation(image)
        image.load()
        method = ORIENTATION_TRANSPOSE.get(orientation)
        if method is not None:  # only then: a transpose is a full copy
            image = image.transpose(method)
        return np.ascontiguousarray(to_rgb8(image))
    except (*DAMAGED_FILE_ERRORS, Image.DecompressionBombError) as exc:
        raise UnsupportedImageError(f"The {image.format} file is damaged or truncated and cannot be decoded.") from exc


def list_images(folder: str | Path) -> list[Path]:
    """The photos in `folder`, by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_image_file(path: str | Path, max_pixels: int = FILE_MAX_PIXELS) -> np.ndarray:
    """A photo on disk decoded as the service decodes an upload of it (EXIF orientation applied,
    16-bit and alpha handled as `to_rgb8` says), so that training, evaluation and the gate see the
    pixels the service will. Errors name the file."""
    try:
        return decode_image(Path(path).read_bytes(), max_pixels)
    except InputError as exc:
        raise type(exc)(f"{path}: {exc}") from exc


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation tag of an image file (1, as stored, when it has none)."""
    with Image.open(path) as image:
        image.load()  # as decode_image does: a PNG's eXIf chunk may follow its pixels
        return _orientation(image)


# -- raw pixel buffers -------------------------------------------------------------------------

RAW_FORMATS = {"rgb8": 3, "l8": 1, "bayer_rg8": 1}  # bytes per pixel


@dataclass(frozen=True)
class RawSpec:
    """A raw, headerless pixel buffer: `width` × `height` pixels, rows top to bottom."""

    width: int
    height: int
    pixel_format: str = "rgb8"

    @property
    def nbytes(self) -> int:
        return self.width * self.height * RAW_FORMATS[self.pixel_format]

    def to_dict(self) -> dict[str, int | str]:
        return {"width": self.width, "height": self.height, "format": self.pixel_format}


def check_raw(size: int, spec: RawSpec, max_pixels: int) -> ImageInfo:
    """Validate a raw buffer's parameters against its byte count, before anything is allocated."""
    if spec.pixel_format not in RAW_FORMATS:
        raise InvalidParameterError(f"The raw format must be one of {', '.join(RAW_FORMATS)}; got {spec.pixel_format[:20]!r}.")
    if spec.width < 1 or spec.height < 1:
        raise InvalidParameterError("Raw input needs positive `width` and `height` query parameters.")
    _check_pixels(spec.width, spec.height, max_pixels)
    if spec.pixel_format == "bayer_rg8" and (spec.width < 2 or spec.height < 2):
        raise InvalidParameterError("A Bayer mosaic needs at least 2 x 2 pixels.")
    if size == 0:
        raise EmptyUploadError("The uploaded body is empty.")
    if size != spec.nbytes:
        raise InvalidParameterError(
            f"A {spec.width} x {spec.height} {spec.pixel_format} buffer is {spec.nbytes:,} bytes; the body has {size:,}."
        )
    return ImageInfo("RAW", spec.width, spec.height, spec.pixel_format)


def demosaic_rggb(mosaic: np.ndarray) -> np.ndarray:
    """Bilinear demosaicing of an RGGB Bayer mosaic (H, W) uint8 → (H, W, 3) uint8.

    Each missing colour sample is the mean of the nearest samples of that colour (2 or 4 of them).
    Written here with numpy rather than pulling in OpenCV for one function. Works in strips of
    rows (with a two-row halo, which keeps the RGGB phase) so memory does not grow with the image.
    """
    height = mosaic.shape[0]
    out = np.empty((*mosaic.shape, 3), np.uint8)
    strip = 1024
    for y in range(0, height, strip):
        y0, y1 = max(0, y - 2), min(height, y + strip + 2)
        out[y : y + strip] = _demosaic_strip(mosaic[y0:y1])[y - y0 : y - y0 + strip]
    return out


def _demosaic_strip(mosaic: np.ndarray) -> np.ndarray:
    height, width = mosaic.shape
    planes = np.zeros((3, height, width), np.float32)
    present = np.zeros((3, height, width), np.float32)
    sites = {0: (slice(0, None, 2), slice(0, None, 2)), 2: (slice(1, None, 2), slice(1, None, 2))}
    for channel, (rows, cols) in sites.items():
        planes[channel][rows, cols] = mosaic[rows, cols]
        present[channel][rows, cols] = 1
    for rows, cols in ((slice(0, None, 2), slice(1, None, 2)), (slice(1, None, 2), slice(0, None, 2))):
        planes[1][rows, cols] = mosaic[rows, cols]
        present[1][rows, cols] = 1
    kernel = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32)
    out = np.empty((height, width, 3), np.uint8)
    for channel in range(3):
        values = _convolve3(planes[channel], kernel)
        weights = _convolve3(present[channel], kernel)
        filled = np.where(present[channel] > 0, planes[channel], values / np.maximum(weights, 1e-6))
        out[..., channel] = np.clip(filled + 0.5, 0, 255).astype(np.uint8)
    return out


def _convolve3(plane: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    padded = np.pad(plane, 1)
    height, width = plane.shape
    total = np.zeros_like(plane)
    for dy in range(3):
        for dx in range(3):
            if kernel[dy, dx]:
                total += kernel[dy, dx] * padded[dy : dy + height, dx : dx + width]
    return total


def decode_raw(data: bytes, spec: RawSpec, max_pixels: int) -> np.ndarray:
    """A raw buffer → (H, W, 3) uint8 RGB (grey replicated, Bayer RGGB demosaiced)."""
    check_raw(len(data), spec, max_pixels)
    pixels = np.frombuffer(data, np.uint8)
    if spec.pixel_format == "rgb8":
        return pixels.reshape(spec.height, spec.width, 3).copy()
    plane = pixels.reshape(spec.height, spec.width)
    if spec.pixel_format == "l8":
        return np.repeat(plane[..., None], 3, axis=2)
    return demosaic_rggb(plane)
