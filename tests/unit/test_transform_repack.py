"""Registration's streaming repack (services/transform/repack.py): the source package's
members plus byom's container settings, uploaded in parts, in bounded memory."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from typing import Any

import pytest

from model.server.container_settings import MEMBER as SERVER_MEMBER
from services.transform import repack as repack_module
from services.transform.repack import MAX_READ, MEMBER, RepackError, repack

MIB = 1024 * 1024


class FakeS3:
    """get_object, head and the multipart calls: what repack uses, recording sizes."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.uploads: dict[str, list[bytes]] = {}
        self.aborted: list[str] = []
        self.largest_source_read = 0

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        fake = self
        data = self.objects[f"{Bucket}/{Key}"]

        class Body(io.BytesIO):
            def read(self, size: int | None = -1) -> bytes:
                data = super().read(size)
                fake.largest_source_read = max(fake.largest_source_read, len(data))
                return data

        return {"Body": Body(data), "ContentLength": len(data)}

    def create_multipart_upload(self, Bucket: str, Key: str, **_: Any) -> dict[str, str]:
        self.uploads[f"{Bucket}/{Key}"] = []
        return {"UploadId": f"{Bucket}/{Key}"}

    def upload_part(self, UploadId: str, PartNumber: int, Body: bytes, **_: Any) -> dict[str, str]:
        parts = self.uploads[UploadId]
        assert PartNumber == len(parts) + 1
        parts.append(Body)
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, UploadId: str, MultipartUpload: dict, **_: Any) -> None:
        parts = self.uploads.pop(UploadId)
        assert [p["PartNumber"] for p in MultipartUpload["Parts"]] == list(range(1, len(parts) + 1))
        self.objects[UploadId] = b"".join(parts)
        self.completed_parts = [len(part) for part in parts]

    def abort_multipart_upload(self, UploadId: str, **_: Any) -> None:
        self.uploads.pop(UploadId)
        self.aborted.append(UploadId)


def tar_gz(files: dict[str, bytes], **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", **kwargs) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def files_of(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.isreg()
        }


def test_the_member_name_is_the_model_servers():
    assert MEMBER == SERVER_MEMBER


def test_the_settings_are_added_and_a_users_copy_is_replaced():
    source = {
        "xgboost-model.json": b'{"learner": {}}',
        "code/inference.py": b"def model_fn(d): return d\n",
        "./.byom-container.json": b'{"environment": {"MINE": "1"}}',
    }
    s3 = FakeS3({"src/p/model.tar.gz": tar_gz(source)})
    environment = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_BATCH": "true"}
    repack(s3, ("src", "p/model.tar.gz"), ("reg", "models/m/1/model.tar.gz"), "img:1", environment)
    written = files_of(s3.objects["reg/models/m/1/model.tar.gz"])
    assert set(written) == {MEMBER, "xgboost-model.json", "code/inference.py"}
    assert json.loads(written[MEMBER]) == {"image": "img:1", "environment": environment}
    assert written["code/inference.py"] == source["code/inference.py"]


def test_a_large_package_streams_in_parts_with_bounded_reads(monkeypatch):
    monkeypatch.setattr(repack_module, "PART_SIZE", 1 * MIB)
    big = os.urandom(5 * MIB)  # incompressible: the new package is about as large
    s3 = FakeS3({"src/big.tar.gz": tar_gz({"model.bin": big, "b/small.txt": b"x"})})
    repack(s3, ("src", "big.tar.gz"), ("reg", "out.tar.gz"), None, {})
    assert len(s3.completed_parts) >= 5
    assert max(s3.completed_parts) <= 1 * MIB
    written = files_of(s3.objects["reg/out.tar.gz"])
    assert written["model.bin"] == big and written["b/small.txt"] == b"x"
    assert s3.largest_source_read <= 1 * MIB  # gzip's own read size, never the whole


def test_a_huge_pax_header_is_refused_before_it_is_buffered():
    name = "n" * (2 * MAX_READ)  # a long name: a PAX record larger than MAX_READ
    s3 = FakeS3({"src/bomb.tar.gz": tar_gz({name: b"x"}, format=tarfile.PAX_FORMAT)})
    with pytest.raises(RepackError, match="PAX headers may take at most"):
        repack(s3, ("src", "bomb.tar.gz"), ("reg", "out.tar.gz"), None, {})
    assert s3.aborted == ["reg/out.tar.gz"] and "reg/out.tar.gz" not in s3.objects


@pytest.mark.parametrize(
    "data",
    [b"not a package", gzip.compress(b"not a tar, but gzip" * 100), tar_gz({"a": b"1"})[:40]],
)
def test_a_source_that_is_not_a_tar_gz_is_refused(data):
    s3 = FakeS3({"src/bad.tar.gz": data})
    with pytest.raises(RepackError, match=r"not a readable tar\.gz"):
        repack(s3, ("src", "bad.tar.gz"), ("reg", "out.tar.gz"), None, {})
    assert s3.aborted == ["reg/out.tar.gz"]


def test_bombs_stop_early(monkeypatch):
    monkeypatch.setattr(repack_module, "MAX_MEMBERS", 3)
    s3 = FakeS3({"src/many.tar.gz": tar_gz({f"f{i}": b"x" for i in range(5)})})
    with pytest.raises(RepackError, match="more than 3 members"):
        repack(s3, ("src", "many.tar.gz"), ("reg", "out.tar.gz"), None, {})
    monkeypatch.setattr(repack_module, "RATIO_FLOOR", 1024 * 1024)
    s3 = FakeS3({"src/zeros.tar.gz": tar_gz({"zeros": bytes(8 * MIB)})})  # about 1000:1
    with pytest.raises(RepackError, match="decompression bomb"):
        repack(s3, ("src", "zeros.tar.gz"), ("reg", "out.tar.gz"), None, {})
    assert s3.aborted == ["reg/out.tar.gz"]
