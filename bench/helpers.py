"""Small helpers the benchmarks share (kept here so that bench/ does not depend on tests/)."""

from __future__ import annotations

import io
import socket

import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def encode(array: np.ndarray, fmt: str = "PNG", **params: object) -> bytes:
    """An image file's bytes (PNG, JPEG...) of a uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **params)
    return buffer.getvalue()
