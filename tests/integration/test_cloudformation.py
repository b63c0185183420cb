"""The CloudFormation template deployed to moto, and the deployment's tools run for real.

- The template goes to moto's CloudFormation with only the resource types moto
  cannot create left out (listed in the deployment docs); the bucket, queues,
  table, rules, functions and Batch resources it makes are checked, and every
  BYOM_* value the functions and the worker get must equal the stack's outputs
  and name a resource that exists. Each endpoint mode deploys too; what moto
  cannot create there is checked in tests/unit/test_template_endpoint_modes.py.
- checkov and shellcheck run from .venv-iac (infra/iac_venv.sh); the images and
  bundles are checked in test_images_and_bundles.py.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml  # type: ignore[import-untyped]
from botocore.exceptions import ClientError

from infra import package_lambda
from tests.integration.iac_tools import iac_tool, tool_env
from tests.unit.template_conditions import conditions
from tests.unit.test_template import (
    BUILDSPEC,
    NOT_FOR_THE_WORKER,
    REPO,
    TEMPLATE,
    load_template,
    references,
    wiring,
)

pytestmark = pytest.mark.integration

SCRIPTS = [REPO / "infra" / name for name in ("deploy.sh", "destroy.sh", "iac_venv.sh")]
REGION = "us-east-1"
# Created by the test only because moto insists; AWS uses Batch's service-linked role.
MOTO_BATCH_SERVICE_ROLE = "MotoBatchServiceRole"
# Resources moto could create but that refer to ones it cannot (the CodeBuild project).
CASCADED = {"ImageBuildTrigger", "ImageBuildTriggerRole"}
# Resources of a type moto supports in a shape it refuses: moto 5.2.5 requires
# every production variant to name a model, and a scale-to-zero endpoint's
# variant names none (its inference component does).
MOTO_REFUSES = {"scale-to-zero": {"EndpointConfig"}}
ENDPOINT_MODES = ("always-on", "serverless", "scale-to-zero")


def moto_template(**overrides: str) -> tuple[dict[str, Any], set[str], set[str]]:
    """The template for these parameters less what moto cannot create.

    Returns it, the unsupported and the cascaded. Resources whose condition is
    false for the parameters are left out, as CloudFormation leaves them out.
    """
    from moto.cloudformation.parsing import get_model_map

    template = copy.deepcopy(load_template())
    supported = set(get_model_map())
    resources = template["Resources"]
    # In every mode, so that each unsupported resource is known whatever the mode.
    unsupported = {name for name, item in resources.items() if item["Type"] not in supported}
    held = conditions(overrides)
    for name, item in list(resources.items()):
        if "Condition" in item and not held[item["Condition"]]:
            del resources[name]
    mode = overrides.get("EndpointMode", load_template()["Parameters"]["EndpointMode"]["Default"])
    removed = (unsupported & set(resources)) | MOTO_REFUSES.get(mode, set())
    while True:
        dependent = {
            name
            for name, item in resources.items()
            if name not in removed and references(item.get("Properties", {})) & removed
        }
        if not dependent:
            break
        removed |= dependent
    for name in removed:
        del resources[name]
    # DependsOn only orders creation; a dependency left out no longer needs waiting for.
    for item in resources.values():
        if "DependsOn" in item:
            kept = [name for name in _as_list(item["DependsOn"]) if name not in removed]
            if kept:
                item["DependsOn"] = kept
            else:
                del item["DependsOn"]
    template["Outputs"] = {
        name: output
        for name, output in template["Outputs"].items()
        if not references(output) & removed
    }
    resources[MOTO_BATCH_SERVICE_ROLE] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "batch.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        },
    }
    resources["ComputeEnvironment"]["Properties"]["ServiceRole"] = {
        "Fn::GetAtt": [MOTO_BATCH_SERVICE_ROLE, "Arn"]
    }
    return template, unsupported, removed - unsupported


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass
class Deployed:
    endpoint: str
    stage: str
    outputs: dict[str, str]
    unsupported: set[str]
    cascaded: set[str]
    template: dict[str, Any]

    def client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


def deploy(endpoint: str, bundle_dir: Path, **overrides: str) -> Deployed:
    """Create a stack from the moto-ready template; ``overrides`` are template parameters."""
    template, unsupported, cascaded = moto_template(**overrides)
    stage = f"t{uuid.uuid4().hex[:8]}"
    stack = Deployed(endpoint, stage, {}, unsupported, cascaded, template)
    artifacts = f"byom-bootstrap-{stage}"
    s3 = stack.client("s3")
    s3.create_bucket(Bucket=artifacts)
    bundle = bundle_dir / "lambda.zip"
    code_hash = package_lambda.build_lambda(bundle, with_dependencies=False)
    s3.put_object(Bucket=artifacts, Key=f"lambda/{code_hash}.zip", Body=bundle.read_bytes())
    parameters = {
        "Stage": stage,
        "ArtifactBucket": artifacts,
        "LambdaCodeKey": f"lambda/{code_hash}.zip",
        "SourceBundleKey": "source/0.zip",
        "ImageTag": "0",
        "ModelDataUrl": f"s3://{artifacts}/model/0/model.tar.gz",
        # moto splits a list parameter only when it is passed, not its default.
        "InstanceTypes": load_template()["Parameters"]["InstanceTypes"]["Default"],
        **overrides,
    }
    cloudformation = stack.client("cloudformation")
    cloudformation.create_stack(
        StackName=f"byom-{stage}",
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.monotonic() + 30
    while True:
        described = cloudformation.describe_stacks(StackName=f"byom-{stage}")["Stacks"][0]
        if not described["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    stack.outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return stack


@pytest.fixture(scope="module")
def deployed(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    # always-on: every resource moto can create, the endpoint included; the other
    # modes deploy in test_every_endpoint_mode_deploys.
    return deploy(moto_endpoint, tmp_path_factory.mktemp("bundle"), EndpointMode="always-on")


def test_stack_creates_every_resource_moto_supports(deployed: Deployed) -> None:
    assert deployed.unsupported == {
        "EndpointScaling",
        "EndpointScalingPolicy",
        "DeadLettersAlarm",
        "FailedJobsAlarm",
        "EndpointErrorsAlarm",
        "FunctionErrorsAlarm",
        "ImageBuildProject",
        "DataBucketPolicy",
        "AlarmSubscription",
        "IngestQueuePolicy",
        "StatusQueuePolicy",
        "Images",
        "TransformApiUrl",
        # scale-to-zero's inference component, its scaling and its wake-up alarm.
        "InferenceComponent",
        "ComponentScaling",
        "ComponentScalingPolicy",
        "ComponentWakePolicy",
        "ComponentWakeAlarm",
    }
    assert deployed.cascaded == CASCADED
    listed = deployed.client("cloudformation").list_stack_resources(
        StackName=f"byom-{deployed.stage}"
    )["StackResourceSummaries"]
    created = {r["LogicalResourceId"] for r in listed if r["ResourceStatus"] == "CREATE_COMPLETE"}
    # Conditional resources for other capacity choices (Fargate) are not expected.
    assert set(deployed.template["Resources"]) - created == set()
    assert len(created) >= 60


def _kept(call: Any, **kwargs: Any) -> dict[str, Any] | None:
    """A configuration moto kept from the template, or None where it dropped it."""
    try:
        response: dict[str, Any] = call(**kwargs)
    except ClientError:
        return None
    response.pop("ResponseMetadata", None)
    return response or None


def test_bucket_is_encrypted_and_named_by_stage(deployed: Deployed) -> None:
    s3 = deployed.client("s3")
    bucket = deployed.outputs["DataBucketName"]
    assert bucket == f"byom-{deployed.stage}-123456789012-{REGION}"
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert {"Key": "byom:stage", "Value": deployed.stage} in tags
    # moto 5.2.5 drops these (tests/unit/test_template.py checks them in the
    # template); should a later moto keep them, they must be right here too.
    blocked = _kept(s3.get_public_access_block, Bucket=bucket)
    if blocked:
        assert all(blocked["PublicAccessBlockConfiguration"].values())
    lifecycle = _kept(s3.get_bucket_lifecycle_configuration, Bucket=bucket)
    if lifecycle:
        assert any(rule.get("Expiration") for rule in lifecycle["Rules"])
    notifications = _kept(s3.get_bucket_notification_configuration, Bucket=bucket)
    if notifications:
        assert "EventBridgeConfiguration" in notifications


def test_queues_have_dead_letters_encryption_and_visibility(deployed: Deployed) -> None:
    sqs = deployed.client("sqs")
    expected_visibility = {"ingest": 720, "scheduler": 360, "status": 1800}
    for name, visibility in expected_visibility.items():
        url = sqs.get_queue_url(QueueName=f"byom-{deployed.stage}-{name}")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["SqsManagedSseEnabled"] == "true"
        assert int(attributes["VisibilityTimeout"]) == visibility
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["maxReceiveCount"] == 5
        assert redrive["deadLetterTargetArn"].endswith(f":byom-{deployed.stage}-{name}-dlq")
        dlq = sqs.get_queue_url(QueueName=f"byom-{deployed.stage}-{name}-dlq")["QueueUrl"]
        dlq_attributes = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])[
            "Attributes"
        ]
        assert dlq_attributes["SqsManagedSseEnabled"] == "true"
        assert int(dlq_attributes["MessageRetentionPeriod"]) == 14 * 24 * 3600


def test_jobs_table_is_on_demand(deployed: Deployed) -> None:
    table = deployed.client("dynamodb").describe_table(TableName=deployed.outputs["JobsTableName"])
    assert table["Table"]["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["Table"]["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    dynamodb = deployed.client("dynamodb")
    ttl = dynamodb.describe_time_to_live(TableName=deployed.outputs["JobsTableName"])
    if ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED":  # moto 5.2.5 drops it
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


def test_sagemaker_table_and_api_function(deployed: Deployed) -> None:
    dynamodb = deployed.client("dynamodb")
    name = deployed.outputs["SageMakerTableName"]
    assert name == f"byom-{deployed.stage}-sagemaker"
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    if "SSEDescription" in table:  # moto may drop it; test_template_transform.py checks it
        assert table["SSEDescription"]["Status"] == "ENABLED"
    function = deployed.client("lambda").get_function_configuration(
        FunctionName=f"byom-{deployed.stage}-sagemaker-api"
    )
    assert function["Handler"] == "services.transform.handler.handler"
    assert function["Runtime"] == "python3.12"
    # moto cannot create the function URL (AWS::Lambda::Url), so not its output.
    assert "SageMakerApiUrl" not in deployed.outputs


def test_rules_route_to_the_right_queues(deployed: Deployed) -> None:
    events = deployed.client("events")
    stage, outputs = deployed.stage, deployed.outputs
    arn = f"arn:aws:sqs:{REGION}:123456789012:byom-{stage}"

    uploads = events.describe_rule(Name=f"byom-{stage}-uploads")
    assert json.loads(uploads["EventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [outputs["DataBucketName"]]},
            "object": {"key": [{"prefix": "input/"}]},
        },
    }
    (target,) = events.list_targets_by_rule(Rule=f"byom-{stage}-uploads")["Targets"]
    assert target["Arn"] == f"{arn}-ingest"
    assert target["DeadLetterConfig"]["Arn"] == f"{arn}-ingest-dlq"

    failures = events.describe_rule(Name=f"byom-{stage}-batch-failures")
    pattern = json.loads(failures["EventPattern"])
    assert pattern["detail"] == {"jobQueue": [outputs["BatchJobQueueArn"]], "status": ["FAILED"]}
    (target,) = events.list_targets_by_rule(Rule=f"byom-{stage}-batch-failures")["Targets"]
    assert target["Arn"] == f"{arn}-status"

    bus = outputs["EventBusName"]
    assert bus == f"byom-{stage}-events"
    failed = events.describe_rule(Name=f"byom-{stage}-failed-jobs", EventBusName=bus)
    assert json.loads(failed["EventPattern"])["detail"] == {"status": ["FAILED"]}

    reaper = events.describe_rule(Name=f"byom-{stage}-reaper")
    assert reaper["ScheduleExpression"] == "rate(5 minutes)"


def test_functions_consume_their_queues_with_partial_failures(deployed: Deployed) -> None:
    lambda_ = deployed.client("lambda")
    stage = deployed.stage
    consumers = {
        "ingest": "ingest",
        "scheduler": "scheduler",
        "status": "status",
        "ingest-dlq": "dead-letters",
        "scheduler-dlq": "dead-letters",
        "status-dlq": "dead-letters",
    }
    mappings = {
        m["EventSourceArn"].rsplit(":", 1)[1]: m
        for m in lambda_.list_event_source_mappings()["EventSourceMappings"]
        if f"byom-{stage}-" in m["EventSourceArn"]
    }
    assert set(mappings) == {f"byom-{stage}-{queue}" for queue in consumers}
    for queue, function in consumers.items():
        mapping = mappings[f"byom-{stage}-{queue}"]
        assert mapping["FunctionArn"].endswith(f":function:byom-{stage}-{function}")
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # Long work (an upload, inline scoring, an assembly) is not batched.
        assert mapping["BatchSize"] == (10 if queue.endswith("-dlq") else 1), queue
    for function in ("ingest", "scheduler", "status", "dead-letters", "reaper"):
        configuration = lambda_.get_function_configuration(FunctionName=f"byom-{stage}-{function}")
        assert configuration["Runtime"] == "python3.12"


def test_batch_array_job_definition(deployed: Deployed) -> None:
    batch = deployed.client("batch")
    (definition,) = batch.describe_job_definitions(
        jobDefinitions=[deployed.outputs["BatchJobDefinitionArn"]]
    )["jobDefinitions"]
    assert definition["jobDefinitionName"] == f"byom-{deployed.stage}-worker"
    assert definition["retryStrategy"]["attempts"] == 3
    assert definition["containerProperties"]["image"].endswith(f"/byom-{deployed.stage}/worker:0")
    (queue,) = batch.describe_job_queues(jobQueues=[deployed.outputs["BatchJobQueueArn"]])[
        "jobQueues"
    ]
    (order,) = queue["computeEnvironmentOrder"]
    (environment,) = batch.describe_compute_environments(
        computeEnvironments=[order["computeEnvironment"]]
    )["computeEnvironments"]
    resources = environment["computeResources"]
    assert resources["type"] == "EC2"
    assert (resources["minvCpus"], resources["maxvCpus"]) == (0, 64)
    assert resources["instanceTypes"] == ["m6i.large", "m6i.xlarge"]


@pytest.mark.parametrize("compute_type", ["FARGATE", "SPOT"])
def test_other_capacity_choices_deploy(
    moto_endpoint: str, tmp_path: Path, compute_type: str
) -> None:
    stack = deploy(moto_endpoint, tmp_path, ComputeType=compute_type)
    batch = stack.client("batch")
    (queue,) = batch.describe_job_queues(jobQueues=[stack.outputs["BatchJobQueueArn"]])["jobQueues"]
    (environment,) = batch.describe_compute_environments(
        computeEnvironments=[queue["computeEnvironmentOrder"][0]["computeEnvironment"]]
    )["computeEnvironments"]
    assert environment["computeResources"]["type"] == compute_type
    (definition,) = batch.describe_job_definitions(
        jobDefinitions=[stack.outputs["BatchJobDefinitionArn"]]
    )["jobDefinitions"]
    container = definition["containerProperties"]
    if compute_type == "FARGATE":
        assert container["networkConfiguration"] == {"assignPublicIp": "ENABLED"}
        assert "instanceRole" not in environment["computeResources"]
    else:
        assert "networkConfiguration" not in container
        assert environment["computeResources"]["allocationStrategy"] == (
            "SPOT_PRICE_CAPACITY_OPTIMIZED"
        )


def test_services_read_exactly_what_the_stack_outputs(deployed: Deployed) -> None:
    lambda_ = deployed.client("lambda")
    outputs, stage = deployed.outputs, deployed.stage
    expected = {variable: outputs[output] for variable, output in wiring().items()}
    for function in ("ingest", "scheduler", "status", "dead-letters", "reaper", "sagemaker-api"):
        environment = lambda_.get_function_configuration(FunctionName=f"byom-{stage}-{function}")[
            "Environment"
        ]["Variables"]
        assert {name: str(environment[name]) for name in expected} == expected, function
    (definition,) = deployed.client("batch").describe_job_definitions(
        jobDefinitions=[outputs["BatchJobDefinitionArn"]]
    )["jobDefinitions"]
    worker = {
        item["name"]: str(item["value"])
        for item in definition["containerProperties"]["environment"]
    }
    worker_expected = {k: v for k, v in expected.items() if k not in NOT_FOR_THE_WORKER}
    assert {name: worker[name] for name in worker_expected} == worker_expected
    # Arrays are sized to the compute environment the stack actually made.
    batch = deployed.client("batch")
    (queue,) = batch.describe_job_queues(jobQueues=[outputs["BatchJobQueueArn"]])["jobQueues"]
    (compute,) = batch.describe_compute_environments(
        computeEnvironments=[queue["computeEnvironmentOrder"][0]["computeEnvironment"]]
    )["computeEnvironments"]
    assert worker["BYOM_MAX_VCPUS"] == str(compute["computeResources"]["maxvCpus"])
    requirements = definition["containerProperties"]["resourceRequirements"]
    (vcpus,) = [r["value"] for r in requirements if r["type"] == "VCPU"]
    assert worker["BYOM_WORKER_VCPUS"] == str(vcpus)
    for function in ("ingest", "scheduler", "status", "dead-letters", "reaper"):
        environment = lambda_.get_function_configuration(FunctionName=f"byom-{stage}-{function}")[
            "Environment"
        ]["Variables"]
        assert str(environment["BYOM_MAX_VCPUS"]) == worker["BYOM_MAX_VCPUS"], function
        assert str(environment["BYOM_WORKER_VCPUS"]) == worker["BYOM_WORKER_VCPUS"], function
        assert str(environment["BYOM_INLINE_MAX_BYTES"]) == worker["BYOM_INLINE_MAX_BYTES"], (
            function
        )

    # ... and each value names a resource that exists.
    assert expected["BYOM_REGION"] == REGION
    deployed.client("s3").head_bucket(Bucket=expected["BYOM_BUCKET"])
    deployed.client("dynamodb").describe_table(TableName=expected["BYOM_JOBS_TABLE"])
    deployed.client("dynamodb").describe_table(TableName=expected["BYOM_SAGEMAKER_TABLE"])
    deployed.client("events").describe_event_bus(Name=expected["BYOM_EVENT_BUS"])
    sqs = deployed.client("sqs")
    for variable in ("BYOM_SCHEDULER_QUEUE_URL", "BYOM_STATUS_QUEUE_URL", "BYOM_INGEST_QUEUE_URL"):
        # moto's CloudFormation answers with the AWS host; the path is the queue.
        account_and_name = expected[variable].split("amazonaws.com/", 1)[1]
        actual = sqs.get_queue_url(QueueName=account_and_name.split("/")[1])["QueueUrl"]
        assert actual.endswith(f"/{account_and_name}")
    assert batch.describe_job_queues(jobQueues=[expected["BYOM_BATCH_JOB_QUEUE"]])["jobQueues"]
    assert batch.describe_job_definitions(jobDefinitions=[expected["BYOM_BATCH_JOB_DEFINITION"]])[
        "jobDefinitions"
    ]
    # moto drops SageMaker names, so the endpoint's is checked in the template.
    assert expected["BYOM_ENDPOINT_NAME"] == f"byom-{stage}-model"
    assert deployed.client("sagemaker").list_endpoints()["Endpoints"]


# ------------------------------------------------------------------ scanners


def test_checkov_passes() -> None:
    checkov = iac_tool("checkov")
    result = subprocess.run(
        [
            str(checkov), "--file", str(TEMPLATE), "--framework", "cloudformation",
            "--skip-download", "--output", "json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=tool_env(),
        timeout=120,
    )  # fmt: skip
    report = json.loads(result.stdout)
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == [], result.stderr[-2000:]
    assert result.returncode == 0
    assert report["summary"]["passed"] > 100
    assert report["summary"]["parsing_errors"] == 0
    # Every skip is one of the template's own, with its reason.
    skipped = report["results"]["skipped_checks"]
    assert skipped
    assert all(check["check_result"].get("suppress_comment") for check in skipped)


def test_scripts_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = iac_tool("shellcheck")
    # The buildspec's commands are bash too; check them as one script.
    phases = yaml.safe_load(BUILDSPEC.read_text())["phases"]["build"]
    snippet = tmp_path / "buildspec.sh"
    snippet.write_text(
        "#!/usr/bin/env bash\n" + "\n".join([*phases["commands"], *phases["finally"]]) + "\n"
    )
    result = subprocess.run(
        [str(shellcheck), "--severity=style", *map(str, SCRIPTS), str(snippet)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for script in SCRIPTS:
        assert os.access(script, os.X_OK), f"{script} is not executable"
        assert "set -euo pipefail" in script.read_text()


def test_deploy_script_help_runs() -> None:
    for script in SCRIPTS[:2]:
        result = subprocess.run(
            [str(script), "--help"], capture_output=True, text=True, timeout=30, cwd=REPO
        )
        assert result.returncode == 0, result.stderr
        assert "stage" in result.stdout


# ------------------------------------------------------------------ endpoint modes


def _role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def _attached_policy_documents(stack: Deployed, role_arn: str) -> list[dict[str, Any]]:
    iam = stack.client("iam")
    documents = []
    for attached in iam.list_attached_role_policies(RoleName=_role_name(role_arn))[
        "AttachedPolicies"
    ]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
        )["PolicyVersion"]["Document"]
        documents.append(json.loads(version) if isinstance(version, str) else version)
    return documents


def _component_grants(stack: Deployed, role_arn: str) -> dict[str, set[str]]:
    """sagemaker:* action -> the inference-component ARNs a role's attached policies allow."""
    grants: dict[str, set[str]] = {}
    for document in _attached_policy_documents(stack, role_arn):
        for statement in document["Statement"]:
            for action in _as_list(statement["Action"]):
                for resource in _as_list(statement["Resource"]):
                    if ":inference-component/" in resource:
                        grants.setdefault(action, set()).add(resource)
    return grants


@pytest.mark.parametrize("mode", ["serverless", "scale-to-zero"])
def test_every_endpoint_mode_deploys(moto_endpoint: str, tmp_path: Path, mode: str) -> None:
    stack = deploy(moto_endpoint, tmp_path, EndpointMode=mode)
    listed = stack.client("cloudformation").list_stack_resources(StackName=f"byom-{stack.stage}")[
        "StackResourceSummaries"
    ]
    created = {r["LogicalResourceId"] for r in listed if r["ResourceStatus"] == "CREATE_COMPLETE"}
    assert set(stack.template["Resources"]) - created == set()
    assert stack.cascaded == CASCADED | (
        {"EndpointConfig", "Endpoint"} if mode == "scale-to-zero" else set()
    )

    component = f"byom-{stack.stage}-model-ic" if mode == "scale-to-zero" else ""
    lambda_ = stack.client("lambda")
    scheduler = lambda_.get_function_configuration(FunctionName=f"byom-{stack.stage}-scheduler")
    environment = scheduler["Environment"]["Variables"]
    assert environment["BYOM_INFERENCE_COMPONENT"] == component
    assert str(environment["BYOM_ENDPOINT_WAIT_SECONDS"]) == "900"
    (definition,) = stack.client("batch").describe_job_definitions(
        jobDefinitions=[stack.outputs["BatchJobDefinitionArn"]]
    )["jobDefinitions"]
    worker = {
        item["name"]: str(item["value"])
        for item in definition["containerProperties"]["environment"]
    }
    # moto 5.2.5 answers a container environment value of "" as []; AWS keeps "".
    assert worker["BYOM_INFERENCE_COMPONENT"] in ({component} if component else {"", "[]"})
    assert worker["BYOM_ENDPOINT_WAIT_SECONDS"] == "900"

    # The scheduler may wake the component and both may invoke it, in this mode only.
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:inference-component/{component}"
    scheduler_grants = _component_grants(stack, scheduler["Role"])
    worker_grants = _component_grants(stack, definition["containerProperties"]["jobRoleArn"])
    if mode == "scale-to-zero":
        assert scheduler_grants == {
            "sagemaker:InvokeEndpoint": {arn},
            "sagemaker:DescribeInferenceComponent": {arn},
            "sagemaker:UpdateInferenceComponentRuntimeConfig": {arn},
        }
        assert worker_grants == {"sagemaker:InvokeEndpoint": {arn}}
    else:
        assert scheduler_grants == worker_grants == {}
        configs = stack.client("sagemaker").list_endpoint_configs()["EndpointConfigs"]
        serverless = [
            variant["ServerlessConfig"]
            for config in configs
            for variant in stack.client("sagemaker").describe_endpoint_config(
                EndpointConfigName=config["EndpointConfigName"]
            )["ProductionVariants"]
            if "ServerlessConfig" in variant
        ]
        assert {"MemorySizeInMB": 2048, "MaxConcurrency": 20} in serverless


def test_always_on_names_no_inference_component(deployed: Deployed) -> None:
    lambda_ = deployed.client("lambda")
    for function in ("ingest", "scheduler", "status", "dead-letters", "reaper", "sagemaker-api"):
        environment = lambda_.get_function_configuration(
            FunctionName=f"byom-{deployed.stage}-{function}"
        )["Environment"]["Variables"]
        assert environment["BYOM_INFERENCE_COMPONENT"] == "", function
        assert str(environment["BYOM_ENDPOINT_WAIT_SECONDS"]) == "900", function
