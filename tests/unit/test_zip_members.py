"""Zip archive uploads: the central directory and every member are read within limits."""

from __future__ import annotations

import io
import random
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.inference_worker import archive as worker_archive
from services.inference_worker.archive import Archive
from shared import zip_members
from shared.errors import InputError
from shared.s3_file import BUFFER, S3RangeFile
from shared.settings import get_settings
from shared.zip_members import MAX_DIRECTORY_BYTES, Member, media_members, open_archive
from tests.unit.bounds import MIB, within_memory

URI = "s3://byom-local/input/photos.zip"


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def worker_archive_of(data: bytes, monkeypatch: pytest.MonkeyPatch) -> Archive:
    monkeypatch.setattr(worker_archive, "open_object", lambda *args: io.BytesIO(data))
    return Archive("byom-local", "input/photos.zip", "etag", len(data))


def test_a_video_member_that_inflates_past_the_ratio_is_refused_unread(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 8 MiB of zeros deflate to about 8 KB: a ratio near 1,000, over the default 100.
    data = zip_of({"clips/bomb.mp4": b"\x00" * (8 * MIB)})
    archive = worker_archive_of(data, monkeypatch)
    path = tmp_path / "video"
    with pytest.raises(InputError, match="BYOM_MAX_COMPRESSION_RATIO") as caught:
        archive.extract("clips/bomb.mp4", URI, 2, path)
    assert caught.value.line == 2 and path.stat().st_size == 0


def test_a_video_member_over_the_file_limit_is_refused_unread(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BYOM_MAX_FILE_BYTES", str(MIB))
    data = zip_of({"clip.mp4": bytes(range(256)) * 8192}, zipfile.ZIP_STORED)  # 2 MiB stored
    archive = worker_archive_of(data, monkeypatch)
    with pytest.raises(InputError, match=f"over the {MIB}-byte limit .BYOM_MAX_FILE_BYTES"):
        archive.extract("clip.mp4", URI, 1, tmp_path / "video")


def test_members_within_their_limits_are_read_whole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    video = random.Random(7).randbytes(256_000)  # as incompressible as a real video
    data = zip_of({"a.png": b"png bytes", "notes.txt": b"x", "b/c.mp4": video})
    archive = worker_archive_of(data, monkeypatch)
    archive.extract("b/c.mp4", URI, 3, tmp_path / "video")
    assert (tmp_path / "video").read_bytes() == video
    assert archive.read("a.png", URI, 1, limit=100) == b"png bytes"
    with pytest.raises(InputError, match="over the 5-byte limit"):
        archive.read("a.png", URI, 1, limit=5)
    with pytest.raises(InputError, match="not in the archive"):
        archive.read("gone.png", URI, 1, limit=5)


class RangedS3:
    """get_object with a Range, as S3 answers it; counts the GETs."""

    def __init__(self, data: bytes) -> None:
        self.data, self.ranges = data, list[tuple[int, int]]()

    def get_object(self, *, Bucket: str, Key: str, Range: str, IfMatch: str) -> dict[str, Any]:
        first, last = (int(x) for x in Range.removeprefix("bytes=").split("-"))
        self.ranges.append((first, last))
        return {"Body": io.BytesIO(self.data[first : last + 1])}


def test_members_are_read_by_ranged_gets_through_the_bound(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    video = random.Random(3).randbytes(600_000)
    notes = random.Random(4).randbytes(300_000)
    data = zip_of({"notes.txt": notes, "a.png": b"png", "v.mp4": video})
    s3 = RangedS3(data)

    def open_object(bucket: str, key: str, etag: str, size: int) -> io.BufferedReader:
        return io.BufferedReader(S3RangeFile(bucket, key, etag, size, s3=s3), BUFFER)

    monkeypatch.setattr(worker_archive, "open_object", open_object)
    archive = Archive("byom-local", "input/photos.zip", "etag", len(data))
    assert len(s3.ranges) <= 3  # the directory: its end record, the zip64 locator, itself
    archive.extract("v.mp4", URI, 3, tmp_path / "video")
    assert (tmp_path / "video").read_bytes() == video
    assert archive.read("a.png", URI, 2, limit=10) == b"png"
    assert all(first >= 300_000 for first, _ in s3.ranges)  # notes.txt is never read


def test_the_listing_keeps_images_and_videos_in_order() -> None:
    data = zip_of({"a.PNG": b"1", "dir/": b"", "x.txt": b"2", "v.mov": b"3", "b.jpg": b"45"})
    with open_archive(io.BytesIO(data), URI) as archive:
        found = media_members(archive, URI, max_items=10)
    assert found == [
        Member("a.PNG", "image", 1, 1),
        Member("v.mov", "video", 1, 4),
        Member("b.jpg", "image", 2, 5),
    ]
    with open_archive(io.BytesIO(data), URI) as archive, pytest.raises(InputError, match="2 im"):
        media_members(archive, URI, max_items=2)


class HugeFile(io.RawIOBase):
    """A 64 GiB object whose end record claims a 4 GiB central directory; the rest zeros."""

    SIZE = 64 << 30

    def __init__(self) -> None:
        self.position, self.largest_read = 0, 0
        self.end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, 0xFFFF_FFF0, 16, 0)

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = {0: 0, 1: self.position, 2: self.SIZE}[whence] + offset
        return self.position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.SIZE - self.position
        self.largest_read = max(self.largest_read, size)
        assert size <= 256 * MIB, f"asked to read {size} bytes at once"
        tail_start = self.SIZE - len(self.end)
        data = bytearray(min(size, self.SIZE - self.position))
        for i in range(len(data)):  # only the last bytes are ever read in full
            if self.position + i >= tail_start:
                data[i] = self.end[self.position + i - tail_start]
        self.position += len(data)
        return bytes(data)


def test_a_lying_end_record_cannot_make_the_listing_read_gigabytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The end record says the directory holds 4 GiB: zipfile asked for all of it
    # in one read. Now the bound refuses before a byte of it is fetched.
    from services.ingest import images as ingest_images
    from services.ingest.ingest import Upload

    huge = HugeFile()
    monkeypatch.setattr(ingest_images, "open_object", lambda *args: huge)
    upload = Upload("byom-local", "input/photos.zip", "etag", HugeFile.SIZE, {})
    with pytest.raises(InputError, match=f"over the {MAX_DIRECTORY_BYTES}-byte limit"):
        ingest_images.archive_items(upload)
    assert huge.largest_read < MIB


SAMPLE = zip_of({"a.png": b"\x89PNG" + bytes(300), "notes.txt": b"n" * 50, "v.mp4": bytes(900)})


def list_and_read(data: bytes) -> list[bytes]:
    """What ingest and the worker do with an archive: list it, then read every member."""
    read = []
    with open_archive(io.BytesIO(data), URI) as archive:
        for member in media_members(archive, URI, max_items=100):
            info = archive.getinfo(member.name)
            if member.kind == "image":
                read.append(zip_members.read_member(archive, info, URI, member.line, 4096))
            else:
                out = io.BytesIO()
                zip_members.copy_member(
                    archive, info, out, URI, member.line, max_bytes=4096, max_ratio=100
                )
                read.append(out.getvalue())
    return read


def test_a_member_with_an_empty_name_is_passed_over() -> None:
    # zipfile's is_dir() indexes the name's last character: an IndexError for "".
    data = bytearray(zip_of({"a.png": b"1", "b": b"2"}))
    directory, second = data.index(b"PK\x01\x02"), data.rindex(b"PK\x01\x02")
    data[second + 28 : second + 30] = b"\x00\x00"  # the second entry's name length: 0
    del data[second + 46 : second + 47]  # and its name, "b"
    data[-10:-6] = struct.pack("<I", len(data) - 22 - directory)  # the directory's size
    with open_archive(io.BytesIO(bytes(data)), URI) as archive:
        assert [m.name for m in media_members(archive, URI, max_items=5)] == ["a.png"]


def test_the_sample_reads_back() -> None:
    assert list_and_read(SAMPLE) == [b"\x89PNG" + bytes(300), bytes(900)]


@given(st.binary(max_size=2048))
def test_any_bytes_list_or_raise_an_input_error(data: bytes) -> None:
    result = within_memory(lambda: list_and_read(data), 2 * MIB)
    assert isinstance(result, list | InputError), result


@given(
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, len(SAMPLE)),
)
def test_mutated_archives_list_or_raise_an_input_error(
    edits: list[tuple[int, int]], keep: int
) -> None:
    data = bytearray(SAMPLE)
    for position, value in edits:
        data[position % len(data)] = value
    cut = bytes(data[len(SAMPLE) - keep :]) if keep % 3 == 0 else bytes(data)
    result = within_memory(lambda: list_and_read(cut), 2 * MIB)
    assert isinstance(result, list | InputError), result
