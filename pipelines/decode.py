"""Image bytes → RGB arrays: the cheap probe at submit time and the full decode in the pipeline.

`probe_image` reads only what it must to refuse bad uploads at once: the format, the size from the
header (checked against the pixel limit before any pixel is decoded, which stops decompression
bombs), and, for JPEG, a reduced-size decode of the whole stream so a truncated file is caught.
`decode_image` applies EXIF orientation and converts every supported mode to 8-bit RGB.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.errors import EmptyUploadError, ImageTooLargeError, UnsupportedImageError

SUPPORTED_FORMATS = ("JPEG", "MPO", "PNG", "TIFF", "BMP", "WEBP")
_TRANSPARENT_FILL = (255, 255, 255)  # where an image has alpha, it is shown over white

# lithoseg enforces its own pixel limit before decoding; Pillow's global one would only warn at
# a different threshold.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _open(data: bytes) -> Image.Image:
    if not data:
        raise EmptyUploadError("The uploaded file is empty.")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise UnsupportedImageError(
            "The upload is not an image lithoseg can read; send JPEG, PNG, TIFF, BMP or WebP."
        ) from exc
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedImageError(f"{image.format} images are not supported; send JPEG, PNG, TIFF, BMP or WebP.")
    return image


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise UnsupportedImageError("The image has no pixels.")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"The image is {width} x {height} = {width * height:,} pixels; the limit is {max_pixels:,} pixels."
        )


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    """Width and height as displayed. For PNG, only an eXIf chunk before the pixels is read:
    Pillow's getexif() would inflate the whole image to look for one after them."""
    if image.format == "PNG":
        exif = Image.Exif()
        if "exif" in image.info:
            exif.load(image.info["exif"])
    else:
        exif = image.getexif()
    width, height = image.size
    return (height, width) if exif.get(0x0112, 1) in (5, 6, 7, 8) else (width, height)


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
    except (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsupportedImageError(f"The {image.format} file is damaged or truncated and cannot be decoded.") from exc
    return ImageInfo(image.format or "", width, height, image.mode)


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → (H, W, 3) uint8 RGB. 16-bit and 32-bit integer data are rescaled, not clipped."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or (mode == "I" and values.max(initial=0) > 255) else 255.0
        if mode == "F":
            top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_TRANSPARENT_FILL, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode to (H, W, 3) uint8 RGB with EXIF orientation applied."""
    image = _open(data)
    try:
        _check_pixels(image.width, image.height, max_pixels)
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return np.ascontiguousarray(to_rgb8(image))
    except (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError) as exc:
        raise UnsupportedImageError(f"The {image.format} file is damaged or truncated and cannot be decoded.") from exc
