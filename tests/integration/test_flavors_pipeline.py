"""Every flavor through the whole local pipeline: upload -> Batch workers -> output.

The models are the ones the served-flavor tests build; here each one backs a
local stack, a file of rows is uploaded to input/, and the output must hold the
framework's own predictions, one line per row (``p0,p1,p2`` for multi-class).
"""

from __future__ import annotations

import numpy as np
import pytest

from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from tests.integration.helpers import collect_done_events
from tests.integration.test_flavors_served import CASES
from tests.unit.test_model_flavors import classes

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("case", list(CASES))
def test_each_flavor_scores_a_file_end_to_end(case, tmp_path):
    build, atol = CASES[case]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    native, _ = build(model_dir)
    rows = classes(2, rows=3000, seed=12)[0]
    want = np.asarray(native(rows), dtype=np.float64)
    body = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()

    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path / "logs",
        # Through Batch (not the small-file path) in two chunks, so the workers'
        # .npy requests reach each flavor.
        settings={
            "BYOM_FEATURE_COUNT": "4",
            "BYOM_INLINE_MAX_BYTES": "0",
            "BYOM_CHUNK_BYTES": str(len(body) // 2 + 1),
        },
    )
    with LocalStack(config) as stack:
        done_queue = stack.subscribe_done_events("flavor-done")
        s3, sqs = stack.client("s3"), stack.client("sqs")
        s3.put_object(Bucket=config.bucket, Key=f"input/{case}.csv", Body=body)
        uri = f"s3://{config.bucket}/input/{case}.csv"
        try:
            detail = collect_done_events(sqs, done_queue, {uri}, timeout=120)[uri]
        except TimeoutError:
            print(stack.logs(40))
            raise
        assert detail["status"] == "SUCCEEDED", detail
        assert (detail["rows"], detail["chunks"]) == (3000, 2)
        output_key = detail["output_uri"].split("/", 3)[3]
        text = s3.get_object(Bucket=config.bucket, Key=output_key)["Body"].read().decode()
    lines = text.splitlines()
    assert len(lines) == 3000
    served = np.array([line.split(",") for line in lines], dtype=np.float64)
    served = served[:, 0] if want.ndim == 1 else served
    np.testing.assert_allclose(served, want, rtol=0, atol=atol)
