"""A local AWS Batch: the subset of the Batch API byom uses, running children as processes.

Speaks Batch's REST-JSON protocol (``POST /v1/submitjob``, ``/v1/describejobs``,
``/v1/listjobs``, ``/v1/canceljob``, ``/v1/terminatejob``), so the scheduler's
unchanged boto3 ``batch`` client reaches it through ``AWS_ENDPOINT_URL_BATCH``.
Each array child runs the job definition's command with Batch's variables
(``AWS_BATCH_JOB_ID``, ``AWS_BATCH_JOB_ARRAY_INDEX``, ``AWS_BATCH_JOB_ATTEMPT``)
and the submission's overrides, and is retried up to ``retryStrategy.attempts``
times and killed after ``timeout.attemptDurationSeconds``, as Batch does.

Children of a definition ``python -m MODULE`` with ``--preload MODULE`` are
forked warm from a process that imported MODULE once (:mod:`infra.local.zygote`).

It runs commands, so it answers only what a Batch client sends (see
:mod:`infra.local.batch_api`), and only the registered definitions' commands.

    python -m infra.local.batch_runner --port 4567 \\
        --preload services.inference_worker.main \\
        --job-definition "byom-worker=python -m services.inference_worker.main"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex

from aiohttp import web

from infra.local import batch_api
from infra.local.batch_service import BatchRunner
from infra.local.launch import ExecLauncher, ZygoteLauncher, warm_starts_supported
from shared.batch_contract import OVERRIDE_VARIABLES
from shared.loopback import aiohttp_guard

log = logging.getLogger("byom.local.batch")

# Children mostly wait on S3 and the endpoint. Measured on 2 cores, sixty small
# jobs through Batch with warm children: 36.5 s with 2 at once, 34.5 s with 16
# (the local AWS is the limit there, not the children); 8 leaves room for more cores.
DEFAULT_PARALLEL = 8


def make_app(runner: BatchRunner, port: int) -> web.Application:
    """The Batch API on ``port``: loopback clients of that port only, then Batch clients."""

    async def submit_job(request: web.Request) -> web.Response:
        job = runner.submit(await batch_api.body(request))
        return web.json_response({"jobArn": job.arn, "jobName": job.name, "jobId": job.job_id})

    async def describe_jobs(request: web.Request) -> web.Response:
        ids = (await batch_api.body(request)).get("jobs", [])
        found = [d for d in (runner.describe(i) for i in ids if isinstance(i, str)) if d]
        return web.json_response({"jobs": found})

    async def list_jobs(request: web.Request) -> web.Response:
        return web.json_response(runner.list_jobs(await batch_api.body(request)))

    async def stop_job(request: web.Request, *, terminate: bool) -> web.Response:
        body = await batch_api.body(request)
        job_id, reason = body.get("jobId"), body.get("reason")
        if not isinstance(job_id, str) or not isinstance(reason, str):
            raise batch_api.client_error("jobId and reason are required")
        runner.cancel(job_id, reason, terminate=terminate)
        return web.json_response({})

    async def cancel_job(request: web.Request) -> web.Response:
        return await stop_job(request, terminate=False)

    async def terminate_job(request: web.Request) -> web.Response:
        return await stop_job(request, terminate=True)

    guard = aiohttp_guard(port)

    @web.middleware
    async def loopback_only(request: web.Request, handler: batch_api.Handler) -> web.StreamResponse:
        return await guard(request, handler)

    app = web.Application(middlewares=[loopback_only, batch_api.only_batch_clients])
    app.router.add_post("/v1/submitjob", submit_job)
    app.router.add_post("/v1/describejobs", describe_jobs)
    app.router.add_post("/v1/listjobs", list_jobs)
    app.router.add_post("/v1/canceljob", cancel_job)
    app.router.add_post("/v1/terminatejob", terminate_job)
    return app


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--job-definition", action="append", default=[], help="NAME=COMMAND (repeatable)"
    )
    parser.add_argument(
        "--max-parallel", type=int, default=DEFAULT_PARALLEL, help="children running at once"
    )
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        help="MODULE whose `python -m MODULE` children start warm (repeatable)",
    )
    parser.add_argument(
        "--allow-environment",
        action="append",
        default=[],
        metavar="NAME",
        help="an environment override accepted besides the scheduler's own (repeatable; tests)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s batch %(message)s")
    definitions = {}
    for item in args.job_definition:
        name, _, command = item.partition("=")
        definitions[name] = shlex.split(command)

    async def serve() -> None:
        launcher: ExecLauncher | ZygoteLauncher = ExecLauncher()
        if args.preload and warm_starts_supported():
            launcher = ZygoteLauncher(args.preload, ExecLauncher())
            await launcher.open()
        allowed = OVERRIDE_VARIABLES | frozenset(args.allow_environment)
        runner = BatchRunner(
            definitions, args.max_parallel, launcher=launcher, allowed_environment=allowed
        )
        app_runner = web.AppRunner(make_app(runner, args.port), access_log=None)
        await app_runner.setup()
        await web.TCPSite(app_runner, args.host, args.port).start()
        log.info("local Batch listening on %s:%s", args.host, args.port)
        try:
            await asyncio.Event().wait()
        finally:
            if isinstance(launcher, ZygoteLauncher):
                await launcher.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
