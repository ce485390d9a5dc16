"""The ResultStore interface: a flat key → bytes store with prefixes, as S3 is."""

from __future__ import annotations

import abc
import json
from collections.abc import Iterator
from typing import Any

from storage.errors import InvalidKey


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated, with no empty, '.' or '..' parts."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\x00" in key:
        raise InvalidKey(f"{key!r} is not a valid store key.")
    return key


class ResultStore(abc.ABC):
    """Bytes by key. Implementations are safe to use from several threads."""

    url: str

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing what was there, atomically for readers."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes under `key`; `ObjectNotFound` if there are none."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with `prefix`, in lexicographic order."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Return if the store is reachable and usable; raise a `StoreError` otherwise."""

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value, separators=(",", ":")).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))
