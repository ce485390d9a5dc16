"""What requests carry besides multipart files: query parameters, base64 bodies, raw buffers.

Pure functions (no Ray), each raising `InvalidParameterError` / `InputError` subclasses with a
sentence a client can act on; `deployments.http.errors` maps those to 4xx.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

from pipelines.decode import RAW_FORMATS, RawSpec
from pipelines.errors import EmptyUploadError, InvalidParameterError, finite_number
from pipelines.render import check_mask_weight

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_WHITESPACE = re.compile(rb"\s+")


def parse_mask_weight(raw: str | None, default: float) -> float:
    """The overlay opacity from a form or query value: a number in [0, 1], else InvalidParameterError."""
    if raw is None or raw.strip() == "":
        return default
    return check_mask_weight(finite_number("mask_weight", raw, "a number between 0 and 1"))


def parse_bool(name: str, raw: str | None, default: bool) -> bool:
    """A true/false form or query value (true, false, 1, 0, yes, no), else InvalidParameterError naming the parameter."""
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidParameterError(f"The {name} parameter must be true or false; got {raw[:20]!r}.")


def parse_confidence(raw: str | None, default: float = 50.0) -> float:
    """Roboflow's `confidence`, 0–100 → a probability threshold 0–1."""
    if raw is None or raw.strip() == "":
        return default / 100.0
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameterError(f"The confidence must be a number from 0 to 100; got {raw[:20]!r}.") from None
    if not (0.0 <= value <= 100.0):
        raise InvalidParameterError(f"The confidence must be a number from 0 to 100; got {raw[:20]!r}.")
    return value / 100.0


def _positive_int(name: str, raw: str | None) -> int:
    if raw is None or not raw.strip():
        raise InvalidParameterError(f"Raw pixel input needs the `{name}` query parameter (pixels).")
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameterError(f"The {name} must be a whole number of pixels; got {raw[:20]!r}.") from None
    if value < 1:
        raise InvalidParameterError(f"The {name} must be at least 1 pixel; got {value}.")
    return value


def raw_spec(query: Mapping[str, str]) -> RawSpec | None:
    """The raw buffer described by `width`, `height` and `format` (or the bare `bayer` flag of the
    reference service); None when the query describes no raw buffer."""
    if "width" not in query and "height" not in query:
        return None
    pixel_format = (query.get("format") or ("bayer_rg8" if "bayer" in query else "rgb8")).strip().lower()
    if pixel_format not in RAW_FORMATS:
        raise InvalidParameterError(f"The raw format must be one of {', '.join(RAW_FORMATS)}; got {pixel_format[:20]!r}.")
    return RawSpec(_positive_int("width", query.get("width")), _positive_int("height", query.get("height")), pixel_format)


def decode_base64_body(body: bytes) -> bytes:
    """An image sent as base64 text, the way Roboflow's clients send it: `base64 file | curl -d @-`
    (line breaks stripped or not), a form-urlencoded string (`%2B`…), a `data:` URL, or the
    URL-safe alphabet; missing padding is tolerated."""
    text = _WHITESPACE.sub(b"", body)
    if not text:
        raise EmptyUploadError("The request body is empty; send the image as base64 text or as multipart field `file`.")
    if text.startswith(b"data:"):
        text = text.partition(b",")[2]
    if b"%" in text:
        text = unquote_to_bytes(text)
    text += b"=" * (-len(text) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    raise InvalidParameterError(
        "The request body is not valid base64; send the image file's bytes base64-encoded, or as multipart field `file`."
    )
