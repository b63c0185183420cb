"""The local Batch runner as a process on a real socket: warm children, Batch's
semantics, a Batch client's API only, and idempotent submission by the scheduler.

The children here run this very module (``python -m tests.integration.test_batch_runner``,
preloaded): each records what it saw into ``PROBE_DIR`` and then exits with
``PROBE_EXIT`` or, with ``PROBE_BLOCK``, waits until it is killed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.local import resources
from infra.local.processes import Service, free_port, wait_until

PROBE = "tests.integration.test_batch_runner"
QUEUE = "byom-workers"
# The overrides the probes take besides the scheduler's (the runner is told to accept them).
PROBE_VARIABLES = ("PROBE_DIR", "PROBE_EXIT", "PROBE_BLOCK", "BYOM_BUCKET")


def probe_main() -> None:
    """What a child does: write down its pid, parent, environment and view of itself."""
    from shared.settings import get_settings

    # Jobs the scheduler submits carry no PROBE_DIR: they get one per byom job.
    out = Path(
        os.environ.get("PROBE_DIR") or Path(os.environ["PROBE_ROOT"]) / os.environ["BYOM_JOB_ID"]
    )
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "argv": sys.argv,
        "environ": dict(os.environ),
        "proc_environ": Path("/proc/self/environ").read_bytes().decode(),
        "proc_cmdline": Path("/proc/self/cmdline").read_bytes().decode(),
        "warm": PROBE in sys.modules,  # imported before the fork, not run cold
        "bucket": get_settings().bucket,  # settings read now, from this child's environment
        "name": __name__,
    }
    name = f"{os.environ['AWS_BATCH_JOB_ID']}-{os.environ['AWS_BATCH_JOB_ATTEMPT']}.json"
    (out / f".{name}").write_text(json.dumps(record))
    (out / f".{name}").rename(out / name)
    if os.environ.get("PROBE_BLOCK"):
        threading.Event().wait()
    sys.exit(int(os.environ.get("PROBE_EXIT", "0")))


if __name__ == "__main__":
    probe_main()


pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def probe_root(tmp_path_factory):
    return tmp_path_factory.mktemp("probe-root")


@pytest.fixture(scope="module")
def runner(moto_endpoint, tmp_path_factory, probe_root):
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "PROBE_ROOT": str(probe_root),
    }
    service = Service(
        name="batch",
        command=[
            sys.executable, "-m", "infra.local.batch_runner", "--port", str(port),
            "--preload", PROBE, "--job-definition", f"probe={sys.executable} -m {PROBE}",
            *[arg for name in PROBE_VARIABLES for arg in ("--allow-environment", name)],
        ],
        env=env,
        log_path=tmp_path_factory.mktemp("batch") / "batch.log",
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    service.start()
    client = boto3.client(
        "batch",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )

    def answers() -> bool:
        service.check_alive()
        try:
            client.list_jobs(jobQueue=QUEUE)
        except Exception:
            return False
        return True

    wait_until(answers, timeout=30, what="local Batch")
    try:
        yield service, client, port
    finally:
        service.stop()
        print(service.tail(40))


@pytest.fixture
def probe_dir(tmp_path):
    return tmp_path


def submit(client, probe_dir, name, *, size=None, attempts=1, **env):
    variables = [{"name": "PROBE_DIR", "value": str(probe_dir)}]
    variables += [{"name": k, "value": v} for k, v in env.items()]
    args = {
        "jobName": name,
        "jobQueue": QUEUE,
        "jobDefinition": "probe",
        "containerOverrides": {"environment": variables},
        "retryStrategy": {"attempts": attempts},
    }
    if size:
        args["arrayProperties"] = {"size": size}
    return client.submit_job(**args)["jobId"]


def wait_status(client, job_id, statuses=("SUCCEEDED", "FAILED")):
    found = {}

    def done() -> bool:
        found.update(client.describe_jobs(jobs=[job_id])["jobs"][0])
        return found["status"] in statuses

    wait_until(done, timeout=60, what=f"job {job_id}")
    return found


def records(probe_dir):
    return {p.stem: json.loads(p.read_text()) for p in Path(probe_dir).glob("*.json")}


def wait_records(probe_dir, count):
    wait_until(lambda: len(records(probe_dir)) >= count, timeout=60, what=f"{count} children")
    return records(probe_dir)


def test_children_are_warm_processes_with_batchs_environment(runner, probe_dir):
    service, client, _ = runner
    first = submit(client, probe_dir, "warm-a", size=3, BYOM_BUCKET="bucket-a")
    second = submit(client, probe_dir, "warm-b", BYOM_BUCKET="bucket-b")
    assert wait_status(client, first)["status"] == "SUCCEEDED"
    assert wait_status(client, second)["status"] == "SUCCEEDED"
    seen = records(probe_dir)
    assert sorted(seen) == sorted([f"{first}:{i}-1" for i in range(3)] + [f"{second}-1"])
    assert len({r["pid"] for r in seen.values()}) == 4
    for key, record in seen.items():
        env = record["environ"]
        assert record["warm"] and record["name"] == "__main__"
        assert record["ppid"] == service.pid  # a child of the runner, as a fresh exec is
        assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
        assert env["AWS_BATCH_JOB_ID"] == key.rsplit("-", 1)[0]
        assert "BYOM_LOCAL_ZYGOTE_ENV_ROOM" not in env
        # Settings come from the child's own environment, not from the zygote.
        assert record["bucket"] == env["BYOM_BUCKET"]
        # What the kernel shows others is what the child has.
        shown = dict(i.split("=", 1) for i in record["proc_environ"].split("\0") if "=" in i)
        assert shown == env
        assert [a for a in record["proc_cmdline"].split("\0") if a] == [
            sys.executable, "-m", PROBE,
        ]  # fmt: skip
    indices = sorted(seen[f"{first}:{i}-1"]["environ"]["AWS_BATCH_JOB_ARRAY_INDEX"] for i in "012")
    assert indices == ["0", "1", "2"]
    assert "AWS_BATCH_JOB_ARRAY_INDEX" not in seen[f"{second}-1"]["environ"]


def test_exit_codes_and_retries(runner, probe_dir):
    _, client, _ = runner
    job_id = submit(client, probe_dir, "exits", attempts=2, PROBE_EXIT="3")
    job = wait_status(client, job_id)
    assert job["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [3, 3]
    assert sorted(records(probe_dir)) == [f"{job_id}-1", f"{job_id}-2"]


def test_killed_child_is_retried_then_fails(runner, probe_dir):
    _, client, _ = runner
    job_id = submit(client, probe_dir, "killed", attempts=2, PROBE_BLOCK="1")
    for attempt in (1, 2):
        record = wait_records(probe_dir, attempt)[f"{job_id}-{attempt}"]
        os.kill(record["pid"], 9)
    job = wait_status(client, job_id)
    assert job["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [-9, -9]
    assert "exited with code -9" in job["attempts"][-1]["statusReason"]


def test_terminate_stops_running_children_and_list_jobs_shows_it(runner, probe_dir):
    _, client, _ = runner
    job_id = submit(client, probe_dir, "to-terminate", size=2, attempts=3, PROBE_BLOCK="1")
    wait_records(probe_dir, 2)
    client.terminate_job(jobId=job_id, reason="enough")
    job = wait_status(client, job_id)
    assert job["status"] == "FAILED" and job["isTerminated"]
    assert len(records(probe_dir)) == 2  # terminated children are not retried
    pages = client.get_paginator("list_jobs").paginate(
        jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": ["TO-TERMINATE"]}]
    )
    listed = [j for page in pages for j in page["jobSummaryList"]]
    assert [(j["jobId"], j["status"], j["statusReason"]) for j in listed] == [
        (job_id, "FAILED", "enough")
    ]
    assert listed[0]["isTerminated"] is True
    children = client.list_jobs(arrayJobId=job_id)["jobSummaryList"]
    assert sorted(c["arrayProperties"]["index"] for c in children) == [0, 1]
    # Without a filter, Batch lists RUNNING jobs only.
    running = client.list_jobs(jobQueue=QUEUE)["jobSummaryList"]
    assert job_id not in {j["jobId"] for j in running}


def test_browser_style_requests_are_refused_and_run_nothing(runner, probe_dir):
    _, client, port = runner
    body = json.dumps({
        "jobName": "from-a-web-page", "jobQueue": QUEUE, "jobDefinition": "probe",
        "containerOverrides": {"environment": [{"name": "PROBE_DIR", "value": str(probe_dir)}]},
    }).encode()  # fmt: skip
    attempts = [
        {"Content-Type": "text/plain"},  # what a cross-site form or fetch() may send
        {"Content-Type": "application/json"},  # needs a preflight, and has no signature
        {"Content-Type": "text/plain", "Authorization": "AWS4-HMAC-SHA256 junk"},
    ]
    for headers in attempts:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/submitjob", data=body, headers=headers, method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code in (400, 403), headers
    # A signed request that names a host other than this one (DNS rebinding) too.
    rebinding = boto3.client(
        "batch", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    rebinding.meta.events.register(
        "before-sign.batch.*", lambda request, **_: request.headers.replace_header(
            "Host", f"attacker.example:{port}")
        if "Host" in request.headers else request.headers.add_header(
            "Host", f"attacker.example:{port}"),
    )  # fmt: skip
    with pytest.raises(ClientError):
        rebinding.list_jobs(jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": ["x"]}])
    listed = client.list_jobs(
        jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": ["from-a-web-page"]}]
    )
    assert listed["jobSummaryList"] == []
    assert records(probe_dir) == {}


@pytest.mark.parametrize(
    "variable",
    [
        # Code execution in the child: PYTHONWARNINGS imports a module that opens
        # BROWSER, which runs a shell command; LD_PRELOAD loads a library.
        ("PYTHONWARNINGS", "all:0:antigravity.x:0:0"),
        ("BROWSER", "touch /tmp/byom-owned-%s"),
        ("LD_PRELOAD", "/tmp/evil.so"),
        ("PYTHONPATH", "/tmp"),
        # Redirects: the child's AWS endpoints and byom's own settings.
        ("AWS_ENDPOINT_URL", "http://attacker.example"),
        ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://attacker.example"),
        ("BYOM_JOBS_TABLE", "elsewhere"),
    ],
    ids=lambda variable: variable[0],
)
def test_only_the_schedulers_environment_overrides_are_accepted(runner, probe_dir, variable):
    _, client, _ = runner
    name, value = variable
    with pytest.raises(ClientError) as refused:
        client.submit_job(
            jobName=f"override-{name.lower().replace('_', '-')}",
            jobQueue=QUEUE,
            jobDefinition="probe",
            containerOverrides={
                "environment": [
                    {"name": "PROBE_DIR", "value": str(probe_dir)},
                    {"name": name, "value": value},
                ]
            },
        )
    assert refused.value.response["Error"]["Code"] == "ClientException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert name in refused.value.response["Error"]["Message"]
    listed = client.list_jobs(
        jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": ["override-*"]}]
    )
    assert listed["jobSummaryList"] == []
    assert records(probe_dir) == {}


def test_the_schedulers_own_overrides_are_accepted(runner, probe_dir):
    from services.scheduler.batch_jobs import OVERRIDE_VARIABLES

    _, client, _ = runner
    values = {name: f"value-of-{name.lower()}" for name in OVERRIDE_VARIABLES}
    values["BYOM_ARRAY_SIZE"] = "1"
    job_id = submit(client, probe_dir, "scheduler-overrides", **values)
    assert wait_status(client, job_id)["status"] == "SUCCEEDED"
    (record,) = records(probe_dir).values()
    assert {name: record["environ"][name] for name in values} == values


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://attacker.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Host": "127.0.0.1:1"},  # another port on this machine
        {"Host": "localhost.attacker.example"},
    ],
    ids=["origin", "null-origin", "cross-site", "other-port", "rebound-name"],
)
def test_browser_and_rebinding_headers_are_refused_even_when_signed(runner, headers):
    _, _, port = runner
    refused = boto3.client(
        "batch", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip

    def add_headers(request, **_):
        for key, value in headers.items():
            if key in request.headers:
                request.headers.replace_header(key, value)
            else:
                request.headers.add_header(key, value)

    refused.meta.events.register("before-sign.batch.*", add_headers)
    with pytest.raises(ClientError) as error:
        refused.list_jobs(jobQueue=QUEUE)
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_only_the_definitions_command_runs(runner, probe_dir):
    _, client, _ = runner
    with pytest.raises(ClientError) as refused:
        client.submit_job(
            jobName="other-command",
            jobQueue=QUEUE,
            jobDefinition="probe",
            containerOverrides={"command": ["sh", "-c", "touch /tmp/owned"]},
        )
    assert refused.value.response["Error"]["Code"] == "ClientException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as reserved:
        client.submit_job(
            jobName="reserved-variable",
            jobQueue=QUEUE,
            jobDefinition="probe",
            containerOverrides={"environment": [{"name": "AWS_BATCH_JOB_ID", "value": "x"}]},
        )
    assert reserved.value.response["Error"]["Code"] == "ClientException"
    # The definition's own command, repeated, is what Batch clients may send.
    job_id = client.submit_job(
        jobName="same-command",
        jobQueue=QUEUE,
        jobDefinition="probe",
        containerOverrides={
            "command": [sys.executable, "-m", PROBE],
            "environment": [{"name": "PROBE_DIR", "value": str(probe_dir)}],
        },
    )["jobId"]
    assert wait_status(client, job_id)["status"] == "SUCCEEDED"


# --- Idempotent submission: the scheduler against this runner ----------------------


@pytest.fixture
def scheduling(runner, moto_endpoint, monkeypatch, tmp_path):
    """The scheduler's settings and clients aimed at moto and this runner."""
    from services.scheduler import scheduler
    from shared import aws
    from shared.settings import get_settings

    _, client, port = runner
    names = {"bucket": f"sched-{tmp_path.name[-20:]}".lower().replace("_", "-"),
             "table": f"sched-jobs-{tmp_path.name[-20:]}"}  # fmt: skip
    resources.bootstrap(
        moto_endpoint, "us-east-1", bucket=names["bucket"], jobs_table=names["table"],
        event_bus=f"bus-{tmp_path.name[-20:]}", prefix=f"s{abs(hash(tmp_path.name)) % 10**8}",
    )  # fmt: skip
    env = {
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ENDPOINT_URL_BATCH": f"http://127.0.0.1:{port}",
        "BYOM_BUCKET": names["bucket"], "BYOM_JOBS_TABLE": names["table"],
        "BYOM_BATCH_JOB_DEFINITION": "probe", "BYOM_BATCH_JOB_QUEUE": QUEUE,
        "BYOM_INLINE_MAX_BYTES": "0", "BYOM_BYTES_PER_CHILD": "100", "BYOM_WORKER_ATTEMPTS": "1",
    }  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    caches = [get_settings, aws.s3, aws.sqs, aws.dynamodb, aws.events, aws.batch]
    for cached in caches:
        cached.cache_clear()
    yield scheduler, client
    for cached in caches:
        cached.cache_clear()


def waiting_job(job_id: str):
    """A job as ingest leaves it: ACCEPTED, with a three-chunk plan in staging."""
    from datetime import UTC, datetime

    from shared import aws, naming
    from shared.jobs import JobStore
    from shared.schemas import Chunk, ChunkPlan, JobItem, JobState, ScheduleRequest
    from shared.settings import get_settings

    settings, now = get_settings(), datetime.now(UTC)
    rows = b"1,2\n" * 300
    aws.s3().put_object(Bucket=settings.bucket, Key=f"input/{job_id}.csv", Body=rows)
    plan = ChunkPlan.model_validate(dict(
        job_id=job_id, bucket=settings.bucket, key=f"input/{job_id}.csv", etag="e",
        size=len(rows), header=False, data_start=0,
        chunks=tuple(Chunk(index=i, start=i * 400, end=(i + 1) * 400) for i in range(3)),
    ))  # fmt: skip
    aws.s3().put_object(
        Bucket=settings.bucket, Key=naming.plan_key(job_id), Body=plan.model_dump_json()
    )
    store = JobStore()
    assert store.create(
        JobItem(
            job_id=job_id, state=JobState.ACCEPTED, bucket=settings.bucket,
            input_key=plan.key, input_etag="e", input_size=len(rows),
            output_key=f"output/{job_id}.csv", created_at=now, updated_at=now,
            deadline_epoch=int(now.timestamp()) + 3600, expires_at=0, chunk_count=3,
        )
    )  # fmt: skip
    request = ScheduleRequest(job_id=job_id, chunk_count=3, plan_key=naming.plan_key(job_id))
    return store, store.get(job_id), request, plan


def arrays_named(client, name):
    pages = client.get_paginator("list_jobs").paginate(
        jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": [name]}]
    )
    return [job for page in pages for job in page["jobSummaryList"]]


def test_crash_between_submitting_and_recording_runs_the_work_once(scheduling, probe_root):
    scheduler, client = scheduling
    from services.scheduler import batch_jobs
    from shared.settings import get_settings

    store, job, request, plan = waiting_job("crashed0submission")
    # The first delivery submits, then dies before recording the array.
    first = scheduler.submit_array(job, request, plan, get_settings(), client)
    assert store.get(job.job_id).batch_job_id is None
    # The redelivered request finds that array and records it instead of submitting.
    assert scheduler.schedule(request, store, client) == first
    assert store.get(job.job_id).batch_job_id == first
    assert scheduler.schedule(request, store, client) is None  # and again: nothing
    assert wait_status(client, first)["status"] == "SUCCEEDED"
    listed = arrays_named(client, batch_jobs.job_name(job.job_id))
    assert [j["jobId"] for j in listed] == [first]
    ran = records(probe_root / job.job_id)
    assert {r["environ"]["AWS_BATCH_JOB_ID"].split(":")[0] for r in ran.values()} == {first}
    assert sorted(r["environ"]["AWS_BATCH_JOB_ARRAY_INDEX"] for r in ran.values()) == [
        "0", "1", "2",
    ]  # fmt: skip


def test_duplicate_arrays_are_terminated(scheduling, probe_root):
    scheduler, client = scheduling
    from services.scheduler import batch_jobs
    from shared.settings import get_settings

    store, job, request, plan = waiting_job("two0crashed0submissions")
    first = scheduler.submit_array(job, request, plan, get_settings(), client)
    second = scheduler.submit_array(job, request, plan, get_settings(), client)
    assert scheduler.schedule(request, store, client) == first  # the oldest is kept
    assert wait_status(client, second)["status"] == "FAILED"
    by_id = {j["jobId"]: j for j in arrays_named(client, batch_jobs.job_name(job.job_id))}
    assert by_id[second]["isTerminated"] is True
    assert batch_jobs.is_duplicate(by_id[second]["statusReason"])
    assert wait_status(client, first)["status"] == "SUCCEEDED"
