"""Small helpers the benchmarks share (kept here so that bench/ does not depend on tests/)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from deployments.cluster import free_port

__all__ = ["encode", "free_port"]


def encode(array: np.ndarray, fmt: str = "PNG", **params: object) -> bytes:
    """An image file's bytes (PNG, JPEG...) of a uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **params)
    return buffer.getvalue()
