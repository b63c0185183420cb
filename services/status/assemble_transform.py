"""Assemble a SageMaker transform object's output: its ``.out``, where the job asked.

The chunk outputs are the records' outputs already assembled per AssembleWith
(by the workers), so they are concatenated in chunk order, as line outputs are,
into the message's output bucket and key (which may be another bucket than
byom's). Called only once every chunk succeeded, so a ``.out`` appears only for
an object whose every record succeeded.
"""

from __future__ import annotations

from services.status.chunk_outputs import ChunkOutput, assemble_lines
from shared import aws
from shared.errors import ByomError
from shared.schemas import ChunkPlan, JobItem
from shared.transform_end import OUTPUT_JOB_METADATA

OUTPUT_TYPE = "application/octet-stream"  # when the job gave no Accept


def assemble_transform(job: JobItem, outputs: list[ChunkOutput]) -> int:
    if job.plan_key is None:
        raise ByomError(f"transform job {job.job_id} has no plan")
    body = aws.s3().get_object(Bucket=job.bucket, Key=job.plan_key)["Body"].read()
    source = ChunkPlan.model_validate_json(body).transform
    if source is None:
        raise ByomError(f"job {job.job_id}'s plan is not a transform object's")
    return assemble_lines(
        job,
        outputs,
        target=(source.output_bucket, source.output_key),
        content_type=source.settings.accept or OUTPUT_TYPE,
        # Whose it is: a job that ends FAILED or stopped removes only its own .out.
        metadata={OUTPUT_JOB_METADATA: job.job_id},
    )
