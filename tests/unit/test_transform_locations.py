"""Where a transform job may read and write (services/transform/locations.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.transform.locations import check_objects, check_request
from services.transform.requests import CreateTransformJob, parse
from services.transform.wording import RequestInvalid
from shared.settings import get_settings

DATA = "byom-data"


@pytest.fixture(autouse=True)
def data_bucket(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("BYOM_BUCKET", DATA)
    monkeypatch.delenv("BYOM_TRANSFORM_BUCKETS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def request(source: str, output: str, kind: str = "S3Prefix", **extra: Any) -> CreateTransformJob:
    return parse(
        CreateTransformJob,
        {
            "TransformJobName": "j",
            "ModelName": "m",
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": kind, "S3Uri": source}}
            },
            "TransformOutput": {"S3OutputPath": output},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        }
        | extra,
    )


def refusal(job: CreateTransformJob) -> str:
    with pytest.raises(RequestInvalid) as refused:
        check_request(job)
    return refused.value.message


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (f"s3://{DATA}/input/churn/", "starts a byom upload job"),
        (f"s3://{DATA}/input", "starts a byom upload job"),
        (f"s3://{DATA}/in", "starts a byom upload job"),  # a prefix that lists input/
        (f"s3://{DATA}/", "starts a byom upload job"),
        (f"s3://{DATA}/staging/j/", "working files"),
        (f"s3://{DATA}/models/m/1/", "model registry"),
    ],
)
def test_inputs_under_byoms_prefixes_are_refused(source, reason):
    message = refusal(request(source, f"s3://{DATA}/transform/out/"))
    assert message.startswith(f"TransformInput.DataSource.S3DataSource.S3Uri {source!r} is under")
    assert reason in message and "transform/" in message


def test_a_manifest_is_one_object_and_its_objects_are_checked_each():
    check_request(request(f"s3://{DATA}/in.manifest", f"s3://{DATA}/o/", "ManifestFile"))
    with pytest.raises(RequestInvalid, match="upload job"):
        check_objects([(DATA, "input/a.csv")], [])


@pytest.mark.parametrize(
    "output",
    [f"s3://{DATA}/input", f"s3://{DATA}/input/x", f"s3://{DATA}/staging/", f"s3://{DATA}/models"],
)
def test_outputs_under_byoms_prefixes_are_refused(output):
    message = refusal(request(f"s3://{DATA}/transform/in/", output))
    assert message.startswith(f"TransformOutput.S3OutputPath {output!r} is under")


def test_elsewhere_is_allowed_and_each_out_is_checked():
    for source, output in (
        (f"s3://{DATA}/transform/in/", f"s3://{DATA}/transform/out"),
        (f"s3://{DATA}/inputs-of-mine/", f"s3://{DATA}/output/mine/"),
        ("s3://other/input/", "s3://other/staging/"),  # another bucket's prefixes are its own
    ):
        check_request(request(source, output))
    with pytest.raises(RequestInvalid, match="The output object"):
        check_objects([], [(DATA, "input/a.csv.out")])  # an empty S3OutputPath's .out
    capture = {"DataCaptureConfig": {"DestinationS3Uri": f"s3://{DATA}/staging/c"}}
    message = refusal(request(f"s3://{DATA}/t/in/", f"s3://{DATA}/t/out", **capture))
    assert message.startswith("DataCaptureConfig.DestinationS3Uri")


def test_transform_buckets_limits_the_buckets(monkeypatch):
    monkeypatch.setenv("BYOM_TRANSFORM_BUCKETS", f" {DATA} , shared-data")
    get_settings.cache_clear()
    check_request(request(f"s3://{DATA}/t/in/", "s3://shared-data/out/"))
    message = refusal(request("s3://elsewhere/in/", f"s3://{DATA}/t/out"))
    assert "only the buckets byom-data, shared-data (BYOM_TRANSFORM_BUCKETS)" in message
    message = refusal(request(f"s3://{DATA}/t/in/", "s3://elsewhere/out"))
    assert message.startswith("TransformOutput.S3OutputPath 's3://elsewhere/out'")
