import io
import stat
import zipfile

import numpy as np
import pytest

from pipelines.archive import ArchiveError, read_archive
from tests.conftest import encode

MB = 1024 * 1024
PNG = encode(np.full((8, 8, 3), 90, np.uint8))


def make_zip(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for entry in entries:
            if isinstance(entry, zipfile.ZipInfo):
                archive.writestr(entry, b"target")
            else:
                name, data = entry
                archive.writestr(name, data)
    return buffer.getvalue()


def read(data, **limits):
    return read_archive(data, limits.get("entries", 100), limits.get("entry", 8 * MB), limits.get("total", 64 * MB))


def reasons(contents):
    return {s["name"]: s["reason"] for s in contents.skipped}


def test_images_come_back_in_order_and_directories_are_ignored():
    data = make_zip([("a.png", PNG), ("sub/", b""), ("sub/b.png", PNG)])
    contents = read(data)
    assert [name for name, _ in contents.images] == ["a.png", "sub/b.png"]
    assert contents.images[0][1] == PNG and contents.skipped == []


@pytest.mark.parametrize("name", ["../evil.png", "/etc/passwd.png", "a/../../b.png", "C:/x.png", "back\\slash.png"])
def test_path_tricks_are_skipped(name):
    contents = read(make_zip([(name, PNG), ("ok.png", PNG)]))
    assert [n for n, _ in contents.images] == ["ok.png"]
    assert name in reasons(contents)


def test_nested_archives_are_not_opened():
    inner = make_zip([("x.png", PNG)])
    contents = read(make_zip([("inner.zip", inner), ("sneaky.png", inner), ("x.gz", b"\x1f\x8b\x08rest")]))
    assert contents.images == []
    assert all("archive" in reason for reason in reasons(contents).values())


def test_symlinks_are_skipped():
    link = zipfile.ZipInfo("link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    contents = read(make_zip([link, ("ok.png", PNG)]))
    assert [n for n, _ in contents.images] == ["ok.png"]
    assert "symbolic link" in reasons(contents)["link.png"]


def test_zip_bomb_by_ratio_is_skipped_without_inflating():
    contents = read(make_zip([("bomb.png", b"\x00" * (20 * MB))]), entry=64 * MB)
    assert contents.images == [] and "ZIP bomb" in reasons(contents)["bomb.png"]


def test_entry_over_the_size_limit_is_skipped():
    noise = np.random.default_rng(0).integers(0, 255, 3 * MB, dtype=np.uint8).tobytes()
    contents = read(make_zip([("big.png", noise)]), entry=2 * MB)
    assert contents.images == [] and "limit" in reasons(contents)["big.png"]


def test_a_header_that_understates_the_size_is_caught_while_reading():
    noise = np.random.default_rng(1).integers(0, 255, 3 * MB, dtype=np.uint8).tobytes()
    data = bytearray(make_zip([("liar.png", noise)], compression=zipfile.ZIP_STORED))
    # rewrite the declared uncompressed size (local header and central directory) to 1 KB
    small = (1024).to_bytes(4, "little")
    local = data.find(b"PK\x03\x04")
    data[local + 22 : local + 26] = small
    central = data.find(b"PK\x01\x02")
    data[central + 24 : central + 28] = small
    contents = read(bytes(data), entry=2 * MB)
    assert contents.images == []
    assert "liar.png" in reasons(contents)


def test_total_inflated_size_is_bounded():
    noise = [np.random.default_rng(i).integers(0, 255, MB, dtype=np.uint8).tobytes() for i in range(4)]
    contents = read(make_zip([(f"{i}.png", n) for i, n in enumerate(noise)]), total=int(2.5 * MB))
    assert len(contents.images) == 2 and len(contents.skipped) == 2


@pytest.mark.parametrize("data,message", [(b"not a zip", "not a readable ZIP"), (make_zip([("d/", b"")]), "no files")])
def test_unreadable_or_empty_archives_are_refused(data, message):
    with pytest.raises(ArchiveError, match=message):
        read(data)


def test_too_many_entries_are_refused():
    with pytest.raises(ArchiveError, match="limit"):
        read(make_zip([(f"{i}.png", PNG) for i in range(5)]), entries=4)


def test_a_damaged_archive_is_refused_or_read_never_crashes():
    """Cut at every few bytes and a few thousand random byte changes in an archive of deflated,
    bzip2, LZMA and stored entries: each either reads (damaged entries skipped with a reason) or
    is refused with an ArchiveError (a 4xx); nothing else gets out (zlib.error, LZMAError, a
    NotImplementedError for a damaged version field, an empty entry name all did)."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.png", rng.bytes(3000), compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("dir/b.jpg", b"x" * 5000, compress_type=zipfile.ZIP_BZIP2)
        archive.writestr("c.jpg", b"y" * 2000, compress_type=zipfile.ZIP_LZMA)
        archive.writestr("d.txt", b"hello", compress_type=zipfile.ZIP_STORED)
    data = buffer.getvalue()
    variants = [data[:n] for n in range(0, len(data), 7)]
    for _ in range(3000):
        damaged = bytearray(data)
        for position in rng.integers(0, len(damaged), int(rng.integers(1, 6))):
            damaged[position] = int(rng.integers(0, 256))
        variants.append(bytes(damaged))
    for variant in variants:
        try:
            contents = read_archive(variant, 100, 10 * MB, 100 * MB)
        except ArchiveError:
            continue
        assert all(isinstance(name, str) and body for name, body in contents.images)


def test_an_entry_without_a_name_is_skipped():
    contents = read_archive(make_zip([zipfile.ZipInfo(""), ("ok.png", PNG)]), 10, MB, 10 * MB)
    assert [name for name, _ in contents.images] == ["ok.png"]
    assert contents.skipped == [{"name": "", "reason": "It has no name."}]
