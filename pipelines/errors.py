"""Errors raised by `pipelines`.

    LithosegError
    ├── InputError                  the caller sent something we cannot or will not process
    │   ├── EmptyUploadError        zero bytes
    │   ├── UnsupportedImageError   not a decodable image of a supported format
    │   ├── ImageTooLargeError      over the byte or pixel limit (also decompression bombs)
    │   ├── InvalidParameterError   a request parameter out of range or malformed
    │   └── ArchiveError            a ZIP that cannot be read as a batch (pipelines/archive.py)
    ├── CheckpointError             a model checkpoint directory is missing or inconsistent
    └── DatasetError                a labelled folder, photo or mask that cannot be trained on (training/datasets.py)

Messages are complete English sentences: they are shown to API users as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Section = TypeVar("Section")


class LithosegError(Exception):
    """Base of every error lithoseg raises on purpose."""


class InputError(LithosegError):
    """The input cannot be processed; retrying the same input will fail the same way."""


class EmptyUploadError(InputError):
    """The upload has no bytes."""

    pass


class UnsupportedImageError(InputError):
    """The upload is not an image lithoseg can read, or is damaged."""

    pass


class ImageTooLargeError(InputError):
    """The image has more pixels than the limit."""

    pass


class InvalidParameterError(InputError):
    """A request parameter is missing, malformed or out of range."""

    pass


class CheckpointError(LithosegError):
    """A model checkpoint is missing, incomplete or inconsistent."""

    pass


def finite_number(name: str, raw: str, expected: str = "a number") -> float:
    """A request parameter's text as a finite float, or InvalidParameterError saying what was
    expected (`expected`: "a number between 0 and 1", ...)."""
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameterError(f"The {name} must be {expected}; got {raw[:40]!r}.") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidParameterError(f"The {name} must be a finite {expected.removeprefix('a ')}; got {raw[:40]!r}.")
    return value


def checkpoint_section(
    cls: Callable[..., Section], key: str, raw: dict[str, Any] | None, valid: Callable[[Section], bool], rule: str
) -> Section | None:
    """An optional section of a checkpoint's config.json (`raw`, None when absent) as `cls`; a
    CheckpointError naming `key` when its fields are unknown or break `rule` (`valid` is False)."""
    if raw is None:
        return None
    try:
        spec = cls(**raw)
    except TypeError as exc:
        raise CheckpointError(f"{key} in config.json is not valid: {exc}.") from exc
    if not valid(spec):
        raise CheckpointError(f"{key} in config.json is not valid: {raw} ({rule}).")
    return spec
