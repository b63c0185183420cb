"""The scheduler asks a scale-to-zero endpoint for a copy only when it has none and
none was asked for; it never blocks a job on the answer."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from services.scheduler import wake
from shared.settings import Settings


class FakeSageMaker:
    """The two SageMaker calls the scheduler makes, answering from a runtime config."""

    def __init__(self, copies: int, desired: int, fail: str | None = None) -> None:
        self.copies, self.desired, self.fail = copies, desired, fail
        self.updates: list[dict[str, Any]] = []

    def _maybe_fail(self, operation: str) -> None:
        if self.fail == operation:
            error: Any = {"Error": {"Code": "ValidationException", "Message": "in progress"}}
            raise ClientError(error, operation)

    def describe_inference_component(self, InferenceComponentName: str) -> dict[str, Any]:
        self._maybe_fail("DescribeInferenceComponent")
        return {
            "InferenceComponentName": InferenceComponentName,
            "RuntimeConfig": {"CurrentCopyCount": self.copies, "DesiredCopyCount": self.desired},
        }

    def update_inference_component_runtime_config(self, **kwargs: Any) -> dict[str, Any]:
        self._maybe_fail("UpdateInferenceComponentRuntimeConfig")
        self.updates.append(kwargs)
        self.desired = kwargs["DesiredRuntimeConfig"]["CopyCount"]
        return {"InferenceComponentArn": "arn:aws:sagemaker:::inference-component/x"}


SCALE_TO_ZERO = Settings(inference_component="byom-model-ic")


def test_an_endpoint_at_zero_is_asked_for_one_copy_once() -> None:
    sagemaker = FakeSageMaker(copies=0, desired=0)
    first = wake.capacity(SCALE_TO_ZERO, sagemaker)
    assert first == wake.Capacity(copies=0, desired=0, woken=True)
    assert sagemaker.updates == [
        {"InferenceComponentName": "byom-model-ic", "DesiredRuntimeConfig": {"CopyCount": 1}}
    ]
    # The next job finds it asked for and still provisioning: it waits, asks nothing.
    second = wake.capacity(SCALE_TO_ZERO, sagemaker)
    assert second == wake.Capacity(copies=0, desired=1, woken=False)
    assert len(sagemaker.updates) == 1


@pytest.mark.parametrize(("copies", "desired"), [(1, 1), (2, 3)])
def test_an_endpoint_with_copies_is_left_alone(copies: int, desired: int) -> None:
    sagemaker = FakeSageMaker(copies=copies, desired=desired)
    assert wake.capacity(SCALE_TO_ZERO, sagemaker) == wake.Capacity(copies, desired, False)
    assert not sagemaker.updates


def test_an_endpoint_without_a_component_is_not_asked() -> None:
    sagemaker = FakeSageMaker(copies=0, desired=0)
    assert wake.capacity(Settings(), sagemaker) is None
    assert not sagemaker.updates


def test_an_unreadable_component_does_not_hold_the_job() -> None:
    sagemaker = FakeSageMaker(copies=0, desired=0, fail="DescribeInferenceComponent")
    assert wake.capacity(SCALE_TO_ZERO, sagemaker) is None


def test_a_refused_wake_still_says_the_endpoint_is_cold() -> None:
    sagemaker = FakeSageMaker(copies=0, desired=0, fail="UpdateInferenceComponentRuntimeConfig")
    assert wake.capacity(SCALE_TO_ZERO, sagemaker) == wake.Capacity(0, 0, False)
