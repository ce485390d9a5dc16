"""Errors raised by result stores; backends translate their own (OSError, botocore) into these.

StoreError
├── ObjectNotFound      the key does not exist
├── StoreAccessDenied   the store refused our credentials or permissions
├── StoreUnavailable    the store cannot be reached or is failing; retrying may help
└── InvalidKey          a key that would escape the store (absolute, "..", empty parts)
"""


class StoreError(Exception):
    pass


class ObjectNotFound(StoreError):
    pass


class StoreAccessDenied(StoreError):
    pass


class StoreUnavailable(StoreError):
    pass


class InvalidKey(StoreError):
    pass
