"""A manifest's ``{"prefix": ...}`` lists keys in the job's bucket, never byom's own.

A prefix is a string, not a folder: ``s3://bucket/out`` also covers ``output/``.
And a prefix of many keys is refused after the item limit, not after listing it
all. The S3 client is a fake that lists scripted keys a page at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from services.ingest import images
from services.ingest.ingest import Upload
from shared import aws
from shared.errors import InputError
from shared.schemas import RowPolicy
from shared.settings import get_settings

PAGE = 1000


class ListingS3:
    """``list_objects_v2`` over ``keys`` (sorted, as S3 lists them), counting pages."""

    def __init__(self, keys: list[str], manifest: bytes) -> None:
        self.keys = sorted(keys)
        self.manifest = manifest
        self.pages = 0

    def get_paginator(self, name: str) -> ListingS3:
        assert name == "list_objects_v2"
        return self

    def paginate(self, *, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:
        listed = [k for k in self.keys if k.startswith(Prefix)]
        for start in range(0, len(listed), PAGE):
            self.pages += 1
            yield {
                "Contents": [
                    {"Key": key, "Size": 10, "ETag": '"e"'} for key in listed[start : start + PAGE]
                ]
            }

    def get_object(self, **_: Any) -> dict[str, Any]:
        class Body:
            def read(inner) -> bytes:
                return self.manifest

        return {"Body": Body()}


def _items(
    monkeypatch: pytest.MonkeyPatch, keys: list[str], prefix: str, fake: ListingS3 | None = None
) -> list[Any]:
    bucket = get_settings().bucket
    body = json.dumps({"prefix": f"s3://{bucket}/{prefix}"}).encode()
    fake = fake or ListingS3(keys, body)
    fake.manifest = body
    monkeypatch.setattr(aws, "s3", lambda: fake)
    upload = Upload(
        bucket=bucket, key="input/x.manifest.jsonl", etag="e", size=len(body), metadata={}
    )
    return images._manifest_items(upload, RowPolicy())


def test_a_prefix_that_covers_byoms_own_output_lists_none_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = get_settings()
    keys = [
        "outdoor/a.jpg",
        f"{settings.output_prefix}20260101T000000Z-job.jsonl/1.jpg",
        f"{settings.output_prefix}drawn/2.png",
    ]
    items = _items(monkeypatch, keys, settings.output_prefix[:3])
    assert [item.key for item in items] == ["outdoor/a.jpg"]


def test_a_prefix_past_the_item_limit_is_refused_without_listing_it_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = 2500
    monkeypatch.setenv("BYOM_MAX_MANIFEST_ITEMS", str(limit))
    get_settings.cache_clear()
    keys = [f"many/{i:08d}.jpg" for i in range(limit + 20 * PAGE)]
    fake = ListingS3(keys, b"")
    try:
        with pytest.raises(InputError, match="more than 2500"):
            _items(monkeypatch, keys, "many/", fake)
    finally:
        monkeypatch.delenv("BYOM_MAX_MANIFEST_ITEMS")
        get_settings.cache_clear()
    assert fake.pages == 3  # not the 23 pages the prefix holds
