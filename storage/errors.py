"""Errors raised by result stores; backends translate their own (OSError, botocore) into these.

StoreError
├── ObjectNotFound      the key does not exist
├── StoreAccessDenied   the store refused our credentials or permissions
├── StoreUnavailable    the store cannot be reached or is failing; retrying may help
└── InvalidKey          a key that would escape the store (absolute, "..", empty parts)
"""


class StoreError(Exception):
    """Any failure of a result store."""

    pass


class ObjectNotFound(StoreError):
    """The key does not exist."""

    pass


class StoreAccessDenied(StoreError):
    """The store refused our credentials or permissions."""

    pass


class StoreUnavailable(StoreError):
    """The store cannot be reached or is failing (disk full, endpoint down); retrying may help."""

    pass


class InvalidKey(StoreError):
    """A key that would escape the store (absolute, '..', empty parts)."""

    pass
