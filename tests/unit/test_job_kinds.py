"""One table of job kinds, one option model, one bad-row policy.

The kind is decided once, at ingest, from the table in ``shared/formats.py`` and
recorded on the plan and the job item; status follows the item (a JSON Lines
record job is not a media job, though both answer ``.jsonl``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.status import finish
from shared import formats, media
from shared.bad_rows import BadRows, RowPolicy
from shared.errors import InputError
from shared.formats import Format, JobKind
from shared.options import OPTION_KEYS, UploadOptions
from shared.processing import ProcessingDefaults
from shared.schemas import (
    Chunk,
    ChunkPlan,
    JobItem,
    JobState,
    MediaItem,
    MediaPlan,
    MediaSourcePlan,
    ParquetSource,
    RecordsSource,
    RowsSource,
    TransformSource,
)
from shared.transform import ObjectSettings
from tests.unit.test_records import CSV


@pytest.mark.parametrize(
    ("key", "content_type", "declared", "kind"),
    [
        ("input/a.csv", "", None, JobKind.ROWS),
        ("input/a.csv.gz", "", None, JobKind.ROWS),
        ("input/a.jsonl", "", None, JobKind.RECORDS),
        ("input/a.NDJSON", "text/csv", None, JobKind.RECORDS),  # the extension wins
        ("input/a", "application/x-ndjson; charset=utf-8", None, JobKind.RECORDS),
        ("input/a.csv", "", "application/vnd.apache.parquet", JobKind.PARQUET),  # metadata first
        ("input/a.parquet", "", None, JobKind.PARQUET),
        ("input/a", "", None, JobKind.ROWS),
        ("input/cats.manifest.jsonl", "", None, JobKind.MEDIA),  # media by name only
        ("input/photos.zip", "application/zip", None, JobKind.MEDIA),
        ("input/A.JPG", "text/csv", None, JobKind.MEDIA),
    ],
)
def test_the_kind_is_metadata_then_extension_then_content_type(
    key: str, content_type: str, declared: str | None, kind: JobKind
) -> None:
    assert formats.kind_of(key, formats.detect_format(key, content_type, declared)) is kind


def test_each_format_has_its_media_type_and_output_extension_once() -> None:
    for spec in formats.FORMATS:
        assert formats.CONTENT_TYPES[spec.media_type] is spec.format
        assert formats.OUTPUT_EXTENSION[spec.format] == spec.extensions[0]
    assert formats.detect_format("a.csv", "", "image/png") is None
    assert formats.output_format(JobKind.MEDIA, Format.CSV) is Format.JSONL
    assert formats.output_format(JobKind.ROWS, Format.PARQUET) is Format.PARQUET


def _plan(**fields: Any) -> ChunkPlan:
    return ChunkPlan(
        job_id="j", bucket="b", key="k", etag="e", size=10,
        chunks=(Chunk(index=0, start=0, end=10),), **fields,
    )  # fmt: skip


def test_the_plan_is_one_variant_per_kind_and_old_plans_still_read() -> None:
    media = MediaPlan(items=(MediaItem(key="a.jpg", kind="image", size=1, line=1),))
    plans = [
        _plan(source=RowsSource(header=True, data_start=4)),
        _plan(source=RecordsSource(processing=CSV.model_copy(update={"content": Format.JSONL}))),
        _plan(source=ParquetSource(processing=CSV.model_copy(update={"content": Format.PARQUET}))),
        _plan(source=MediaSourcePlan(media=media)),
        _plan(
            source=TransformSource(
                settings=ObjectSettings(),
                target_model="m/1/model.tar.gz",
                input_bucket="b",
                input_key="k",
                output_bucket="o",
                output_key="k.out",
                transform_job_name="t",
                transform_index=0,
            )
        ),
    ]
    assert [p.kind for p in plans] == list(JobKind)
    for plan in plans:
        assert ChunkPlan.model_validate_json(plan.model_dump_json()) == plan
    assert plans[0].header and plans[0].data_start == 4 and plans[0].processing is None
    assert plans[3].media == media and plans[3].processing is None and not plans[3].header
    # A plan written before plans had a source: its kind follows from its fields.
    old = {
        "job_id": "j", "bucket": "b", "key": "in/x.zip", "etag": "e", "size": 10,
        "header": False, "chunks": [{"index": 0, "start": 0, "end": 1}],
        "media": {"items": [{"key": "in/x.zip", "kind": "image", "size": 1, "line": 1}]},
    }  # fmt: skip
    read = ChunkPlan.model_validate(old)
    assert read.kind is JobKind.MEDIA and read.media is not None
    assert read.media.source == "archive"
    old.pop("media")
    old["header"] = True
    assert ChunkPlan.model_validate(old).kind is JobKind.ROWS


def test_every_byom_option_is_one_field_and_a_cards_defaults_are_the_same_options() -> None:
    assert len(OPTION_KEYS) == 13 and all(key.startswith("byom-") for key in OPTION_KEYS)
    options = UploadOptions.of(
        {"byom-input-filter": "$[1:]", "byom-on-bad-rows": "skip", "other": "x", "byom-draw": "jpg"}
    )
    assert options.input_filter == "$[1:]" and options.draw_mode("u", default="none") == "jpeg"
    assert options.processing().given() == {"byom-input-filter": "$[1:]"}
    policy = options.row_policy("u", default="fail", default_limit=7)
    assert policy == RowPolicy(on_bad_rows=BadRows.SKIP, max_bad_rows=7)
    with pytest.raises(InputError, match="byom-max-bad-rows='many'"):
        UploadOptions.of({"byom-max-bad-rows": "many"}).row_policy(
            "u", default="fail", default_limit=1
        )
    defaults = ProcessingDefaults(input_filter="$[0:3]", metadata=["job_id"])
    assert defaults.as_options().given() == {
        "byom-input-filter": "$[0:3]",
        "byom-metadata": "job_id",
    }


def test_the_policy_object_fails_at_the_first_bad_row_or_past_the_limit() -> None:
    rejected = {i: InputError("s3://b/k", "bad", line=i + 1) for i in range(3)}
    with pytest.raises(InputError, match="line 1: bad"):
        RowPolicy().enforce(rejected, uri="s3://b/k")
    RowPolicy(on_bad_rows=BadRows.SKIP, max_bad_rows=3).enforce(rejected, uri="s3://b/k")
    with pytest.raises(InputError, match="3 bad images here, over the limit of 2; the first"):
        RowPolicy(on_bad_rows=BadRows.SKIP, max_bad_rows=2).enforce(
            rejected, uri="s3://b/k", what="bad images here"
        )
    RowPolicy().enforce({}, uri="s3://b/k")


class _Store:
    def succeed(self, job_id: str, errors_key: str | None) -> None:
        return None

    def get(self, job_id: str) -> None:
        return None


@pytest.mark.parametrize(
    ("kind", "input_key", "published"),
    [
        (JobKind.RECORDS, "input/rows.jsonl", False),
        (JobKind.MEDIA, "input/cats.manifest.jsonl", True),
        (None, "input/cats.manifest.jsonl", True),  # an item from before kinds were recorded
        (None, "input/rows.jsonl", False),
    ],
)
def test_only_a_media_job_publishes_drawn_images(
    monkeypatch: pytest.MonkeyPatch, kind: JobKind | None, input_key: str, published: bool
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(media, "publish_drawn", lambda *args: calls.append("drawn"))
    monkeypatch.setattr(finish, "assemble", lambda job: calls.append("output"))
    now = datetime.now(UTC)
    job = JobItem(
        job_id="j", state=JobState.RUNNING, bucket="b", input_key=input_key, input_etag="e",
        input_size=1, output_key="output/x.jsonl", created_at=now, updated_at=now,
        deadline_epoch=0, expires_at=0, kind=kind,
    )  # fmt: skip
    finish.succeed(job, _Store())  # type: ignore[arg-type]
    assert calls == (["drawn", "output"] if published else ["output"])
