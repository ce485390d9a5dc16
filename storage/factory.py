"""One place that turns a store URL into a backend: `file://…` or a plain path, or `s3://bucket/prefix`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from pipelines.checkpoint_files import OPTIONAL_FILES, REQUIRED_FILES
from storage.base import ResultStore
from storage.errors import ObjectNotFound

CHECKPOINT_FILES = REQUIRED_FILES  # what every checkpoint directory holds (pipelines/checkpoint_files.py)
CHECKPOINT_EXTRAS = OPTIONAL_FILES  # fetched where present


def open_store(url: str, s3_endpoint_url: str | None = None) -> ResultStore:
    """The result store a URL names: file:///path or s3://bucket/prefix (with an optional S3 endpoint)."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from storage.s3 import S3Store

        if not parsed.netloc:
            raise ValueError(f"{url} names no bucket; use s3://bucket/prefix.")
        return S3Store(parsed.netloc, parsed.path, endpoint_url=s3_endpoint_url)
    if parsed.scheme == "file":
        from storage.local import LocalStore

        return LocalStore(unquote(parsed.path))
    if parsed.scheme == "":
        from storage.local import LocalStore

        return LocalStore(url)
    raise ValueError(f"Unsupported store URL {url!r}: use file:///path or s3://bucket/prefix.")


def fetch_checkpoint(uri: str, s3_endpoint_url: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """A local directory holding the checkpoint at `uri` (a path, or s3://bucket/prefix, downloaded)."""
    if not uri.startswith("s3://"):
        return Path(uri)
    store = open_store(uri, s3_endpoint_url)
    target = Path(cache_dir or tempfile.mkdtemp(prefix="lithoseg-model-"))
    target.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        (target / name).write_bytes(store.get(name))
    for name in CHECKPOINT_EXTRAS:
        try:
            found = store.get(name)
        except ObjectNotFound:
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(found)
    return target
