"""Reading a ZIP of images safely (POST /predict/batch).

Nothing is extracted to disk; entries are read into memory one by one, each bounded in size, and
every entry that is not a plain image file is skipped with a reason:

* directories are ignored; symbolic links, encrypted entries and unsupported compression are skipped;
* names with path tricks (absolute paths, drive letters, `..` components, backslashes, NUL) are
  skipped: lithoseg never writes them anywhere, but a client that does must not be handed them;
* nested archives (ZIP, gzip, tar, 7z, RAR, bzip2, xz by their magic bytes) are skipped, not opened;
* ZIP bombs: the declared sizes are checked (per entry, in total, and the compression ratio), and
  since declared sizes can lie, each entry is read through a stream that stops one byte past the
  limit; the total of what is actually inflated is bounded too.
"""

from __future__ import annotations

import lzma
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import PurePosixPath

from pipelines.errors import InputError

MAX_RATIO = 200  # uncompressed / compressed; images barely compress, bombs compress ~1000:1
_NESTED_MAGIC = {
    b"PK\x03\x04": "a ZIP archive",
    b"PK\x05\x06": "a ZIP archive",
    b"\x1f\x8b": "a gzip archive",
    b"7z\xbc\xaf\x27\x1c": "a 7z archive",
    b"Rar!\x1a\x07": "a RAR archive",
    b"BZh": "a bzip2 archive",
    b"\xfd7zXZ\x00": "an xz archive",
}


class ArchiveError(InputError):
    """A ZIP archive that cannot be read safely (corrupt, encrypted, too many entries, too large)."""

    pass


@dataclass
class ArchiveContents:
    """The images found in an archive, and the entries skipped with their reasons."""

    images: list[tuple[str, bytes]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append({"name": name[:300], "reason": reason})


def unsafe_name(name: str) -> str | None:
    """Why an entry name is unsafe, or None."""
    if not name:
        return "It has no name."
    if "\x00" in name or "\\" in name:
        return "Its name contains a backslash or NUL character."
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "Its name is an absolute path."
    if ".." in PurePosixPath(name).parts:
        return "Its name climbs out of the archive with '..'."
    return None


def nested_archive(head: bytes) -> str | None:
    for magic, kind in _NESTED_MAGIC.items():
        if head.startswith(magic):
            return kind
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive"
    return None


# what reading a damaged entry raises: zipfile's own errors, and each decompressor's (deflate's
# zlib.error and LZMA's LZMAError are not OSErrors; bzip2's is)
DAMAGED_ENTRY = (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError, EOFError, zlib.error, lzma.LZMAError)


def read_archive(data: bytes, max_entries: int, max_entry_bytes: int, max_total_bytes: int) -> ArchiveContents:
    """The image entries of a ZIP (name, bytes) in archive order, and what was skipped and why.

    Entries are not decoded here; the caller probes each as it would a single upload. Raises
    `ArchiveError` if `data` is not a readable ZIP or lists more than `max_entries` files.
    """
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError, struct.error) as exc:
        raise ArchiveError("The archive is not a readable ZIP file.") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.filename.endswith("/")]  # is_dir() fails on an empty name
        if not infos:
            raise ArchiveError("The ZIP archive holds no files.")
        if len(infos) > max_entries:
            raise ArchiveError(f"The ZIP archive holds {len(infos):,} files; the limit is {max_entries:,} per batch.")
        contents = ArchiveContents()
        inflated = 0
        for info in infos:
            name = info.filename
            reason = unsafe_name(name)
            if reason is None:
                reason = _declared_problem(info, max_entry_bytes)
            if reason is None and inflated + info.file_size > max_total_bytes:
                reason = f"The archive inflates to more than {max_total_bytes:,} bytes in total; the rest was not read."
            if reason is not None:
                contents.skip(name, reason)
                continue
            try:
                with archive.open(info) as stream:
                    body = stream.read(max_entry_bytes + 1)
            except DAMAGED_ENTRY:
                contents.skip(name, "The entry is damaged and could not be read.")
                continue
            inflated += len(body)
            if len(body) > max_entry_bytes:
                contents.skip(name, f"It inflates to more than the limit of {max_entry_bytes:,} bytes (its header understates its size).")
                continue
            kind = nested_archive(body[:300])
            if kind is not None:
                contents.skip(name, f"It is {kind}; archives inside archives are not opened.")
                continue
            if not body:
                contents.skip(name, "It is empty.")
                continue
            contents.images.append((name, body))
        return contents


def _declared_problem(info: zipfile.ZipInfo, max_entry_bytes: int) -> str | None:
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):
        return "It is a symbolic link."
    if info.flag_bits & 0x1:
        return "It is encrypted."
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        return "It uses a compression method lithoseg does not read."
    if info.file_size > max_entry_bytes:
        return f"It is {info.file_size:,} bytes uncompressed; the limit is {max_entry_bytes:,} bytes."
    if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
        return f"It compresses {info.file_size / info.compress_size:,.0f} to 1, which only a ZIP bomb does."
    return None


__all__ = ["ArchiveContents", "ArchiveError", "read_archive"]
