"""Row strips: how large images are walked without full-size temporaries."""

from __future__ import annotations

from collections.abc import Iterator

STRIP_PIXELS = 1 << 22  # about 4 megapixels per strip: 12 MB of RGB, 48 MB as float32 RGB


def strip_rows(height: int, width: int, pixels: int | None = None) -> Iterator[slice]:
    """Row ranges of about `pixels` (default STRIP_PIXELS) pixels each, covering `height` rows."""
    rows = max(1, (pixels or STRIP_PIXELS) // max(1, width))
    return (slice(y, min(height, y + rows)) for y in range(0, height, rows))
