"""Errors raised by `pipelines`.

    LithosegError
    ├── InputError                  the caller sent something we cannot or will not process
    │   ├── EmptyUploadError        zero bytes
    │   ├── UnsupportedImageError   not a decodable image of a supported format
    │   ├── ImageTooLargeError      over the byte or pixel limit (also decompression bombs)
    │   └── InvalidParameterError   a request parameter out of range or malformed
    └── CheckpointError             a model checkpoint directory is missing or inconsistent

Messages are complete English sentences: they are shown to API users as they are.
"""


class LithosegError(Exception):
    """Base of every error lithoseg raises on purpose."""


class InputError(LithosegError):
    """The input cannot be processed; retrying the same input will fail the same way."""


class EmptyUploadError(InputError):
    pass


class UnsupportedImageError(InputError):
    pass


class ImageTooLargeError(InputError):
    pass


class InvalidParameterError(InputError):
    pass


class CheckpointError(LithosegError):
    pass
