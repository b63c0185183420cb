"""AWS Batch array child: score this child's share of a job's chunks.

Child ``i`` of ``n`` takes chunks ``i, i+n, i+2n, ...``. For each it sends one
completion to the status queue. A transient failure exits non-zero so that Batch
retries the child; chunks finished by an earlier attempt are not scored again.
On the last attempt, or for bad input or a model error, the failure is reported
as a completion instead, so the job ends FAILED with the reason.

Run as ``python -m services.inference_worker.main`` (the image's entry point).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from contextlib import AsyncExitStack
from typing import Literal

from aiobotocore.config import AioConfig

from services.inference_worker.endpoint import Endpoint
from services.inference_worker.scorers import SCORERS
from services.inference_worker.scoring import ChunkResult, finished_earlier
from shared import aws, chunk_timer, logs, tracing
from shared.errors import ByomError, EndpointNoCapacity, InputError, ModelError
from shared.jobs import JobStore
from shared.logs import configure
from shared.schemas import Chunk, ChunkDone, ChunkFailure, ChunkPlan
from shared.settings import BatchChild, Settings, get_settings

log = logging.getLogger(__name__)

JOB_CHECK_SECONDS = 1.0


def _failure(exc: Exception) -> ChunkFailure:
    if isinstance(exc, InputError):
        return ChunkFailure(kind="input", reason=exc.describe(), line=exc.line, column=exc.column)
    kind: Literal["model", "unavailable"] = (
        "model" if isinstance(exc, ModelError) else "unavailable"
    )
    return ChunkFailure(kind=kind, reason=f"{type(exc).__name__}: {exc}")


def runtime_config(plan: ChunkPlan, settings: Settings) -> AioConfig:
    """The endpoint client's settings: a transform object's InvocationsTimeoutInSeconds
    is held per attempt by the scorer, so the socket waits at least that long."""
    read_timeout = 60
    concurrency = settings.invoke_concurrency
    if plan.transform is not None:
        read_timeout = max(read_timeout, plan.transform.settings.invocations_timeout_seconds + 5)
        concurrency = max(concurrency, plan.transform.settings.max_concurrent)
    return AioConfig(
        retries={"total_max_attempts": 1},
        max_pool_connections=concurrency * 2,
        read_timeout=read_timeout,
    )


async def run(child: BatchChild, settings: Settings) -> int:
    session = aws.aio_session()
    region = settings.region
    async with AsyncExitStack() as stack:
        s3 = await stack.enter_async_context(session.create_client("s3", region_name=region))
        sqs = await stack.enter_async_context(session.create_client("sqs", region_name=region))
        store = JobStore()
        logs.append_job_keys(child.byom_job_id)
        job = await asyncio.to_thread(store.get, child.byom_job_id)
        if job is None or job.state.terminal:
            # A retry of a child whose job has already ended: its staging is gone.
            log.info("job ended; nothing to do", extra={"job_id": child.byom_job_id})
            return 0
        plan_object = await s3.get_object(Bucket=settings.bucket, Key=child.byom_plan_key)
        plan = ChunkPlan.model_validate_json(await plan_object["Body"].read())
        runtime = await stack.enter_async_context(
            session.create_client(
                "sagemaker-runtime", region_name=region, config=runtime_config(plan, settings)
            )
        )
        endpoint = Endpoint(
            runtime,
            settings.endpoint_name,
            concurrency=settings.invoke_concurrency,
            attempts=settings.invoke_attempts,
            backoff=settings.invoke_backoff_seconds,
            backoff_max=settings.invoke_backoff_max_seconds,
            inference_component=settings.inference_component,
            wait_seconds=settings.endpoint_wait_seconds,
            wait_poll_max=settings.endpoint_wait_poll_max_seconds,
        )
        endpoint.target_model = plan.target_model
        mine = plan.chunks[child.aws_batch_job_array_index :: child.byom_array_size]
        # Errors name the upload (or transform object), not staging.
        uri = f"s3://{job.input_bucket or job.bucket}/{job.input_key}"
        output_key = job.output_key

        async def report(
            chunk: Chunk, result: ChunkResult | None, failure: ChunkFailure | None
        ) -> None:
            message = ChunkDone(
                job_id=plan.job_id,
                chunk_index=chunk.index,
                attempt=child.aws_batch_job_attempt,
                rows=result.rows if result else 0,
                bad_rows=result.bad_rows if result else 0,
                output_key=result.output_key if result else None,
                output_bytes=result.output_bytes if result else 0,
                failure=failure,
                timings=chunk_timer.timings(),
            )
            with tracing.sending(
                settings.status_queue_url, **tracing.job_attributes(plan.job_id, chunk.index)
            ):
                await sqs.send_message(
                    QueueUrl=settings.status_queue_url,
                    MessageBody=message.model_dump_json(),
                    MessageSystemAttributes=tracing.sqs_trace_attributes(),
                )

        slots = asyncio.Semaphore(settings.worker_chunks_in_flight)
        stop = asyncio.Event()  # the job failed or ended: start no further chunk
        # A first attempt has nothing to reuse; a retry looks for what its
        # predecessor finished (its outputs carry their counts).
        reuse = child.aws_batch_job_attempt > 1
        checked_at = time.monotonic()

        async def job_ended() -> bool:
            """Whether the job ended, asked at most once a second: a child that is
            terminated stops anyway, this only saves work in between."""
            nonlocal checked_at
            if time.monotonic() - checked_at < JOB_CHECK_SECONDS:
                return False
            checked_at = time.monotonic()
            job = await asyncio.to_thread(store.get, plan.job_id)
            return job is None or job.state.terminal

        async def work(chunk: Chunk) -> None:
            async with (
                slots,
                tracing.span_async(
                    "score chunk", **tracing.job_attributes(plan.job_id, chunk.index)
                ) as chunk_span,
            ):
                if stop.is_set():
                    return
                # This task's own context: the keys and the timer are this chunk's.
                logs.append_job_keys(chunk_index=chunk.index)
                chunk_timer.start()
                if await job_ended():
                    log.info("job ended; stopping", extra={"job_id": plan.job_id})
                    stop.set()
                    return
                try:
                    earlier = await finished_earlier(s3, plan, chunk) if reuse else None
                    result = earlier or await SCORERS[plan.kind](
                        s3, endpoint, plan, chunk, uri=uri, output_key=output_key,
                        settings=settings,
                    )  # fmt: skip
                except (InputError, ModelError, EndpointNoCapacity) as exc:
                    # A retry of the child would fail the same way (or, for an
                    # endpoint that never woke, wait the whole bound again).
                    stop.set()
                    await report(chunk, None, _failure(exc))
                    return
                except Exception as exc:
                    if child.aws_batch_job_attempt < settings.worker_attempts:
                        raise  # Batch retries the child; finished chunks are kept
                    stop.set()
                    await report(chunk, None, _failure(exc))
                    return
                chunk_span.set_attribute("byom.rows", result.rows)
                await report(chunk, result, None)
                log.info(
                    "chunk scored",
                    extra={"job_id": plan.job_id, "chunk": chunk.index, "rows": result.rows},
                )

        # Several chunks in flight: one is parsed while others wait on S3 or the
        # endpoint. A transient error cancels the rest and exits non-zero.
        async with asyncio.TaskGroup() as group:
            for chunk in mine:
                group.create_task(work(chunk))
    return 0


def main() -> None:
    configure("byom-inference-worker")
    tracing.configure("byom-inference-worker")
    try:
        child = BatchChild()
        logs.append_job_keys(child.byom_job_id)  # also on the lines after the run
        with tracing.span(
            "byom-inference-worker.child",
            child.byom_trace_header,
            **tracing.batch_child_attributes(child),
        ):
            code = asyncio.run(run(child, get_settings()))
    except ByomError as exc:
        log.error("worker failed", extra={"error": str(exc)})
        code = 1
    except Exception:
        log.exception("worker crashed")
        code = 1
    finally:
        tracing.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
