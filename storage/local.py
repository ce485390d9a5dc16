"""ResultStore on a local directory (the default, under the repository's `var/`)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from storage.base import ResultStore, check_key
from storage.errors import ObjectNotFound, StoreAccessDenied, StoreUnavailable


class LocalStore(ResultStore):
    """A result store in a local directory; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # write-then-rename, so a reader never sees half a file
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except PermissionError as exc:
            raise StoreAccessDenied(f"Cannot write {key} under {self.root}: permission denied.") from exc
        except OSError as exc:
            raise StoreUnavailable(f"Cannot write {key} under {self.root}: {exc.strerror}.") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"No object {key} in {self.url}.") from exc
        except PermissionError as exc:
            raise StoreAccessDenied(f"Cannot read {key}: permission denied.") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            return
        parent = path.parent
        while parent != self.root:  # drop emptied directories so listings stay cheap
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list(self, prefix: str = "") -> Iterator[str]:
        keys = []
        folder, _, _ = prefix.rpartition("/")  # walk only the folder the prefix is in, not the whole store
        for dirpath, _dirs, files in os.walk(self._path(folder) if folder else self.root):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot create the store directory {self.root}: {exc.strerror}.") from exc
        if not os.access(self.root, os.W_OK):
            raise StoreAccessDenied(f"The store directory {self.root} is not writable.")
