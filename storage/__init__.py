"""Where job records, uploads and results live: a local directory or an S3-compatible bucket."""

from storage.base import ResultStore
from storage.errors import ObjectNotFound, StoreAccessDenied, StoreError, StoreUnavailable
from storage.factory import open_store

__all__ = ["ObjectNotFound", "ResultStore", "StoreAccessDenied", "StoreError", "StoreUnavailable", "open_store"]
