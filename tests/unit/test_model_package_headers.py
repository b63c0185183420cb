"""Tar header bombs: a small archive whose headers inflate to hundreds of MiB.

tarfile reads a GNU long name or a PAX header whole, inside `next()`, before any
member check sees the member it describes. The package check must stop such a
record at its declared size, and count the inflated stream itself, so that a few
hundred KiB of upload cannot take the server's memory.
"""

from __future__ import annotations

import gzip
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from model.package import PackageError, PackageLimits, check_archive
from model.tar_stream import MAX_HEADER_BYTES

MIB = 1024 * 1024
# What the server may allocate to refuse one of these archives.
MEMORY_BOUND = 8 * MIB


def header_bomb(path: Path, kind: bytes, declared: int) -> Path:
    """A .tar.gz whose first record is a `kind` header declaring `declared` bytes of
    'a': one gzip member per MiB, so it is built in milliseconds and stays small."""
    info = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "pax")
    info.type = kind
    info.size = declared
    one_mib = gzip.compress(b"a" * MIB, compresslevel=9)
    with path.open("wb") as out:
        out.write(gzip.compress(info.tobuf(tarfile.GNU_FORMAT)))
        for _ in range(declared // MIB):
            out.write(one_mib)
        out.write(gzip.compress(b"\0" * 1024))
    return path


def peak_while(check: object) -> int:
    tracemalloc.start()
    try:
        assert callable(check)
        check()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE, tarfile.XGLTYPE])
def test_a_header_bomb_is_refused_in_bounded_memory(tmp_path: Path, kind: bytes) -> None:
    path = header_bomb(tmp_path / "model.tar.gz", kind, 256 * MIB)
    assert path.stat().st_size < 2 * MIB

    def check() -> None:
        with pytest.raises(PackageError) as caught:
            check_archive(path, PackageLimits())
        assert "at most 64 KiB" in str(caught.value)

    assert peak_while(check) < MEMORY_BOUND


def test_a_header_just_past_the_cap_is_refused(tmp_path: Path) -> None:
    path = header_bomb(tmp_path / "model.tar.gz", tarfile.GNUTYPE_LONGNAME, MAX_HEADER_BYTES + 1)
    with pytest.raises(PackageError, match="at most 64 KiB"):
        check_archive(path, PackageLimits())


def test_long_names_within_the_cap_still_pass(tmp_path: Path) -> None:
    path = tmp_path / "model.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("d/" + "n" * 300)
        tar.addfile(info, None)
    with tarfile.open(tmp_path / "pax.tar.gz", "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("d/" + "é" * 200)
        info.pax_headers = {"comment": "x" * 1000}
        tar.addfile(info, None)
    for archive in (path, tmp_path / "pax.tar.gz"):
        assert len(check_archive(archive, PackageLimits())) == 1


def test_the_inflated_stream_is_counted(tmp_path: Path) -> None:
    # Many headers, each under the cap, inflate the stream past the ratio limit:
    # the count of inflated bytes stops it, whatever each header declares.
    path = tmp_path / "model.tar.gz"
    with path.open("wb") as out:
        record = tarfile.TarInfo("././@LongLink")
        record.type = tarfile.GNUTYPE_LONGNAME
        record.size = MAX_HEADER_BYTES - 512
        for index in range(1000):
            name = b"a" * (record.size - 16) + f"{index:015d}".encode() + b"\0"
            member = tarfile.TarInfo(f"f{index}")
            out.write(gzip.compress(record.tobuf(tarfile.GNU_FORMAT) + name + member.tobuf(), 9))
    limits = PackageLimits(max_ratio=20)
    with pytest.raises(PackageError, match="inflates"):
        check_archive(path, limits)
