"""The CloudFormation template, the deploy script and the services agree.

Static checks of infra/cloudformation/byom.yaml: cfn-lint, the wiring of every
BYOM_* setting, least-privilege IAM, the data-plane properties the issue asks
for (including those moto's CloudFormation drops, see test_cloudformation.py),
and the packaging helper. Nothing here starts a process.
"""

from __future__ import annotations

import ast
import io
import json
import re
import sys
import types
import urllib.request
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml  # type: ignore[import-untyped]
from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]

from infra import package_lambda
from shared.schemas import DONE_EVENT_DETAIL_TYPE, DONE_EVENT_SOURCE, JobItem
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "cloudformation" / "byom.yaml"
BUILDSPEC = REPO / "infra" / "buildspec.yml"
DEPLOY_SH = REPO / "infra" / "deploy.sh"
WORKER_DOCKERFILE = REPO / "services" / "inference_worker" / "Dockerfile"
DEPLOY_DOCS = (REPO / "docs" / "deploy.md",)

# Every setting that names or locates a resource: the template must pass each.
WHERE_THINGS_LIVE = {
    "region",
    "bucket",
    "jobs_table",
    "event_bus",
    "scheduler_queue_url",
    "status_queue_url",
    "endpoint_name",
    "batch_job_queue",
    "batch_job_definition",
    # SageMaker's models and transform jobs, and where the API sends their objects.
    "sagemaker_table",
    "ingest_queue_url",
}
# The job definition cannot name itself; the worker never submits jobs anyway.
NOT_FOR_THE_WORKER = {"BYOM_BATCH_JOB_DEFINITION"}
# Allowed on "*": actions that have no resource-level permissions at all (the
# Service Authorization Reference lists no resource type for them).
ACTIONS_WITHOUT_RESOURCES = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "batch:ListJobs",
    # X-Ray's OTLP endpoint (span export) has no resource-level permissions.
    "xray:PutSpans",
    "xray:PutSpansForIndexing",
}
# Tuning settings whose template value is not a default but the deployment's own
# figure: BYOM_MAX_VCPUS is the compute environment's MaxvCpus (checked below);
# the setting's default serves the local Batch runner, which has no such bound.
DEPLOYMENT_FIGURES = {"BYOM_MAX_VCPUS"}
# Every job Batch runs for byom carries this tag (the scheduler's SubmitJob).
BYOM_JOB_TAG = "byom:job-id"
BATCH_JOB_ARN = {"Fn::Sub": "arn:${AWS::Partition}:batch:${AWS::Region}:${AWS::AccountId}:job/*"}
# SageMaker's hosting AMI with driver 550 (CUDA 12.4): the GPU image's CUDA 12
# needs it, since the default AMI of ml.g4dn, ml.g5 and ml.p4d has driver 470.
GPU_AMI = "al2-ami-sagemaker-inference-gpu-3-1"
AWS_MANAGED_POLICIES = {
    "AWSXRayDaemonWriteAccess",
    "service-role/AmazonEC2ContainerServiceforEC2Role",
}


@cache
def load_template() -> dict[str, Any]:
    """The template as plain JSON data, intrinsic functions in their long form."""
    loaded = json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))
    assert isinstance(loaded, dict)
    return loaded


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in load_template()["Resources"].items()
        if resource["Type"] == kind
    }


def resource(name: str) -> dict[str, Any]:
    found: dict[str, Any] = load_template()["Resources"][name]
    return found


def wiring() -> dict[str, str]:
    """BYOM_* setting -> the output that carries its value (the template's Metadata)."""
    mapping: dict[str, str] = load_template()["Metadata"]["byom:settings"]
    return mapping


def settings_env_names() -> set[str]:
    # Settings read under a standard name (OTEL_*) keep that name.
    return {
        field.validation_alias
        if isinstance(field.validation_alias, str)
        else f"BYOM_{name.upper()}"
        for name, field in Settings.model_fields.items()
    }


def lambda_environments() -> dict[str, dict[str, Any]]:
    return {
        name: function["Properties"].get("Environment", {}).get("Variables", {})
        for name, function in resources("AWS::Lambda::Function").items()
        if "ZipFile" not in function["Properties"]["Code"]
    }


def worker_environment() -> dict[str, Any]:
    container = resource("JobDefinition")["Properties"]["ContainerProperties"]
    return {item["Name"]: item["Value"] for item in container["Environment"]}


def references(node: Any) -> set[str]:
    """Logical ids (resources and parameters) a template fragment refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                names = re.findall(r"\$\{([^}!][^}]*)\}", text)
                found |= {name.split(".")[0] for name in names if name not in variables}
                found |= references(variables)
            else:
                found |= references(value)
    elif isinstance(node, list):
        for value in node:
            found |= references(value)
    return found


def policy_documents() -> list[tuple[str, dict[str, Any]]]:
    documents: list[tuple[str, dict[str, Any]]] = []
    for name, item in load_template()["Resources"].items():
        properties = item.get("Properties", {})
        if item["Type"] == "AWS::IAM::Role":
            documents += [
                (f"{name}/{policy['PolicyName']}", policy["PolicyDocument"])
                for policy in properties.get("Policies", [])
            ]
        elif item["Type"] in (
            "AWS::IAM::ManagedPolicy",
            "AWS::S3::BucketPolicy",
            "AWS::SQS::QueuePolicy",
        ):
            documents.append((name, properties["PolicyDocument"]))
    return documents


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(role: str) -> list[dict[str, Any]]:
    """The Allow statements a role holds: its inline policies and byom's managed ones."""
    properties = resource(role)["Properties"]
    documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    documents += [
        resource(arn["Ref"])["Properties"]["PolicyDocument"]
        for arn in properties.get("ManagedPolicyArns", [])
        if set(arn) == {"Ref"}
    ]
    return [
        statement
        for document in documents
        for statement in document["Statement"]
        if statement["Effect"] == "Allow"
    ]


def granting(role: str, action: str) -> list[dict[str, Any]]:
    return [s for s in role_statements(role) if action in as_list(s["Action"])]


def object_resources(role: str, action: str) -> set[str]:
    """The data-bucket key patterns (``input/*``...) a role may use ``action`` on."""
    found: set[str] = set()
    for statement in granting(role, action):
        for item in as_list(statement["Resource"]):
            text = item.get("Fn::Sub", "") if isinstance(item, dict) else ""
            if text.startswith("${DataBucket.Arn}/"):
                found.add(text.removeprefix("${DataBucket.Arn}/"))
    return found


def sagemaker_enum(shape: str) -> set[str]:
    """The values SageMaker's API accepts for a string shape, as botocore knows them."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    return set(model.shape_for(shape).metadata.get("enum", []))


def listable_prefixes(role: str) -> set[str]:
    """The s3:prefix patterns under which a role may list the data bucket ("*": anywhere)."""
    found: set[str] = set()
    for statement in granting(role, "s3:ListBucket"):
        assert statement["Resource"] == {"Fn::GetAtt": ["DataBucket", "Arn"]}, role
        if "Condition" not in statement:
            found.add("*")  # transform objects and their .out files may be anywhere
            continue
        found |= set(statement["Condition"]["StringLike"]["s3:prefix"])
    return found


# ------------------------------------------------------------------ linting


def test_cfn_lint_reports_nothing() -> None:
    matches = lint_file(
        TEMPLATE, ManualArgs(regions=["us-east-1", "eu-west-1"], include_checks=["I"])
    )
    assert [str(match) for match in matches] == []


def test_every_checkov_skip_says_why() -> None:
    for name, item in load_template()["Resources"].items():
        for skip in item.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
            assert len(skip.get("comment", "")) > 10, f"{name} skips {skip['id']} without a reason"


def test_no_yaml_aliases() -> None:
    # CloudFormation rejects YAML anchors and aliases.
    text = TEMPLATE.read_text()
    assert not re.search(r"(^|\s)[&*][A-Za-z_]", text, re.MULTILINE)


# ------------------------------------------------------------------ settings wiring


def test_wiring_covers_every_resource_setting() -> None:
    wired = {name.removeprefix("BYOM_").lower() for name in wiring()}
    assert wired == WHERE_THINGS_LIVE
    assert set(Settings.model_fields) >= WHERE_THINGS_LIVE
    outputs = load_template()["Outputs"]
    for output in wiring().values():
        assert output in outputs


def test_services_get_exactly_the_outputs() -> None:
    outputs = load_template()["Outputs"]
    services = lambda_environments() | {"JobDefinition": worker_environment()}
    # Five queue-driven functions, the SageMaker API and the worker.
    assert len(services) == 7
    for service, environment in services.items():
        unknown = set(environment) - settings_env_names()
        assert not unknown, f"{service} gets settings that do not exist: {unknown}"
        expected = set(wiring()) - (NOT_FOR_THE_WORKER if service == "JobDefinition" else set())
        assert expected <= set(environment), f"{service} misses {expected - set(environment)}"
        for variable in expected:
            output = outputs[wiring()[variable]]["Value"]
            assert environment[variable] == output, f"{service} {variable}"


def test_all_services_get_the_same_values() -> None:
    environments = [*lambda_environments().values(), worker_environment()]
    reference = environments[0]
    for environment in environments[1:]:
        for name, value in environment.items():
            assert value == reference[name], name


def test_local_stack_names_the_same_settings(tmp_path: Path) -> None:
    from infra.local.resources import Resources
    from infra.local.stack import LocalStack
    from infra.local.stack_config import StackConfig

    stack = LocalStack(StackConfig(model_dir=tmp_path, log_dir=tmp_path))
    stack.resources = Resources(
        bucket="b", jobs_table="t", event_bus="e", queue_urls={"scheduler": "s", "status": "u"},
        dlq_urls={},
    )  # fmt: skip
    local = {name for name in stack.base_env() if name.startswith("BYOM_")}
    assert local <= settings_env_names()
    for service, environment in lambda_environments().items():
        assert local <= set(environment), f"{service} lacks {local - set(environment)}"


def test_tuning_defaults_match_settings() -> None:
    parameters = load_template()["Parameters"]
    for variable, value in worker_environment().items():
        if set(value) != {"Ref"} or value["Ref"] not in parameters:
            continue
        if variable in DEPLOYMENT_FIGURES:
            continue
        field = Settings.model_fields[variable.removeprefix("BYOM_").lower()]
        default = parameters[value["Ref"]]["Default"]
        if isinstance(field.default, int | float):  # "1" for 1.0: the same number
            assert float(default) == float(field.default), variable
        else:
            assert str(default) == str(field.default), variable


def test_worker_retries_and_timeout_follow_the_settings() -> None:
    definition = resource("JobDefinition")["Properties"]
    for environment in [*lambda_environments().values(), worker_environment()]:
        assert environment["BYOM_WORKER_ATTEMPTS"] == definition["RetryStrategy"]["Attempts"]
        assert (
            environment["BYOM_WORKER_TIMEOUT_SECONDS"]
            == definition["Timeout"]["AttemptDurationSeconds"]
        )


def test_services_size_arrays_and_inline_scoring_from_the_template() -> None:
    compute = resource("ComputeEnvironment")["Properties"]["ComputeResources"]["Fn::If"]
    fargate, ec2 = compute[1], compute[2]
    parameters = load_template()["Parameters"]
    for environment in [*lambda_environments().values(), worker_environment()]:
        # The compute environment's actual bound, whichever capacity type is chosen.
        assert environment["BYOM_MAX_VCPUS"] == fargate["MaxvCpus"] == ec2["MaxvCpus"]
        assert environment["BYOM_INLINE_MAX_BYTES"] == {"Ref": "InlineMaxBytes"}
        # Children per job are bounded by MaxVcpus over a child's own vCPUs.
        requirements = resource("JobDefinition")["Properties"]["ContainerProperties"][
            "ResourceRequirements"
        ]
        (vcpus,) = [r["Value"] for r in requirements if r["Type"] == "VCPU"]
        assert environment["BYOM_WORKER_VCPUS"] == vcpus
    assert (
        parameters["InlineMaxBytes"]["Default"]
        == Settings.model_fields["inline_max_bytes"].default
        == 1048576
    )


def test_endpoint_name_is_the_one_services_call() -> None:
    name = resource("Endpoint")["Properties"]["EndpointName"]
    assert worker_environment()["BYOM_ENDPOINT_NAME"] == name
    assert load_template()["Outputs"]["EndpointName"]["Value"] == name


def test_handlers_exist_in_the_bundle() -> None:
    bundled = {
        path.relative_to(REPO).as_posix()
        for path in package_lambda.collect(package_lambda.LAMBDA_SOURCES)
    }
    for name, function in resources("AWS::Lambda::Function").items():
        properties = function["Properties"]
        if "ZipFile" in properties["Code"]:
            continue
        module, attribute = properties["Handler"].rsplit(".", 1)
        path = module.replace(".", "/") + ".py"
        assert path in bundled, name
        tree = ast.parse((REPO / path).read_text())
        defined = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        } | {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert attribute in defined, f"{name}: {properties['Handler']}"


# ------------------------------------------------------------------ data plane


def test_bucket_is_private_encrypted_tls_only_and_notifies_eventbridge() -> None:
    bucket = resource("DataBucket")["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"] == {
        "EventBridgeEnabled": True
    }
    lifecycle = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    staging = lifecycle["expire-staging"]
    assert staging["Prefix"] == Settings.model_fields["staging_prefix"].default
    assert staging["ExpirationInDays"] == {"Ref": "StagingExpirationDays"}
    (deny,) = resource("DataBucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_data_bucket_aborts_incomplete_multipart_uploads() -> None:
    # Registration's repack, status's assembly and ingest's inflation upload in
    # parts; a Lambda that times out mid-upload leaves parts that S3 bills for but
    # never lists. A rule for the whole bucket (no prefix or filter) aborts them.
    rules = resource("DataBucket")["Properties"]["LifecycleConfiguration"]["Rules"]
    aborting = [
        rule
        for rule in rules
        if rule["Status"] == "Enabled" and "AbortIncompleteMultipartUpload" in rule
    ]
    assert aborting, "no lifecycle rule aborts incomplete multipart uploads"
    for rule in aborting:
        assert "Prefix" not in rule and "Filter" not in rule, rule["Id"]
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        assert isinstance(days, int) and 1 <= days <= 7, rule["Id"]


def test_queues_have_dead_letters_encryption_and_sized_visibility() -> None:
    queues = resources("AWS::SQS::Queue")
    assert len(queues) == 6
    for name, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, name
        if not name.endswith("DeadLetterQueue"):
            redrive = queue["Properties"]["RedrivePolicy"]
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            assert target == name.replace("Queue", "DeadLetterQueue")
            assert 1 < redrive["maxReceiveCount"] <= 10
    mappings = resources("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 6
    for name, mapping in mappings.items():
        properties = mapping["Properties"]
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
        queue = queues[properties["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
        function = resource(properties["FunctionName"]["Ref"])["Properties"]
        # Lambda's guidance for SQS sources: at least six times the function timeout.
        assert queue["VisibilityTimeout"] >= 6 * function["Timeout"], name


def test_local_pollers_run_functions_as_the_template_does() -> None:
    from infra.local.stack_config import DEAD_LETTERS, HANDLERS

    mappings = resources("AWS::Lambda::EventSourceMapping")
    local = {**HANDLERS, "dead-letters": DEAD_LETTERS}
    for mapping in mappings.values():
        function = resource(mapping["Properties"]["FunctionName"]["Ref"])["Properties"]
        name = function["FunctionName"]["Fn::Sub"].removeprefix("byom-${Stage}-")
        module, attribute = function["Handler"].rsplit(".", 1)
        assert local[name].handler == f"{module}:{attribute}", name
        assert local[name].timeout_seconds == function["Timeout"], name
        assert local[name].batch_size == mapping["Properties"]["BatchSize"], name


def test_long_work_is_not_batched_with_unrelated_messages() -> None:
    # A batch shares one function timeout: one long upload, inline scoring or
    # assembly would push the other messages past it, to be redelivered until
    # their DLQ fails their jobs.
    mappings = resources("AWS::Lambda::EventSourceMapping")
    for name in ("IngestEvents", "SchedulerEvents", "StatusEvents"):
        assert mappings[name]["Properties"]["BatchSize"] == 1, name


def test_jobs_table_is_on_demand_with_recovery_and_ttl() -> None:
    table = resource("JobsTable")["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    ttl = table["TimeToLiveSpecification"]
    assert ttl["Enabled"] is True
    assert ttl["AttributeName"] in JobItem.model_fields
    assert table["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]


def test_rules_route_uploads_batch_failures_and_failed_jobs() -> None:
    uploads = resource("UploadsRule")["Properties"]
    assert uploads["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [{"Ref": "DataBucket"}]},
            "object": {"key": [{"prefix": Settings.model_fields["input_prefix"].default}]},
        },
    }
    assert uploads["Targets"][0]["Arn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    failures = resource("BatchFailuresRule")["Properties"]
    assert failures["EventPattern"]["detail"]["jobQueue"] == [{"Ref": "JobQueue"}]
    assert failures["Targets"][0]["Arn"] == {"Fn::GetAtt": ["StatusQueue", "Arn"]}
    failed_jobs = resource("FailedJobsRule")["Properties"]
    assert failed_jobs["EventBusName"] == {"Fn::GetAtt": ["EventBus", "Name"]}
    assert failed_jobs["EventPattern"]["source"] == [DONE_EVENT_SOURCE]
    assert failed_jobs["EventPattern"]["detail-type"] == [DONE_EVENT_DETAIL_TYPE]
    # EventBridge may write only to the queues its own rules target.
    for policy in resources("AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Principal"] == {"Service": "events.amazonaws.com"}
            assert "aws:SourceArn" in statement["Condition"]["ArnEquals"]


def test_batch_array_job_and_capacity_choices() -> None:
    parameters = load_template()["Parameters"]
    assert {"EC2", "SPOT", "FARGATE", "FARGATE_SPOT"} == set(
        parameters["ComputeType"]["AllowedValues"]
    )
    for name in ("MinVcpus", "MaxVcpus", "InstanceTypes", "EndpointInstanceType"):
        assert name in parameters
    for name in ("EndpointInstanceCount", "ModelDataUrl", "Stage"):
        assert name in parameters
    definition = resource("JobDefinition")["Properties"]
    assert definition["Type"] == "container"
    assert definition["ContainerProperties"]["ReadonlyRootFilesystem"] is True
    assert "JobRoleArn" in definition["ContainerProperties"]


def test_endpoint_autoscales_on_invocations_per_instance() -> None:
    policy = resource("EndpointScalingPolicy")["Properties"]
    metric = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    target = resource("EndpointScaling")["Properties"]
    assert target["MinCapacity"] == {"Ref": "EndpointInstanceCount"}


def test_multi_model_parameter_wires_mode_data_and_the_roles_access() -> None:
    template = load_template()
    parameter = template["Parameters"]["MultiModel"]
    assert parameter["Default"] == "false" and set(parameter["AllowedValues"]) == {"true", "false"}
    assert template["Conditions"]["IsMultiModel"] == {"Fn::Equals": [{"Ref": "MultiModel"}, "true"]}
    container = resource("Model")["Properties"]["PrimaryContainer"]
    assert container["Mode"] == {"Fn::If": ["IsMultiModel", "MultiModel", "SingleModel"]}
    # The registry's prefix (BYOM_MODELS_PREFIX), where publish puts packages.
    registry = Settings.model_fields["models_prefix"].default
    assert container["ModelDataUrl"] == {
        "Fn::If": [
            "IsMultiModel",
            {"Fn::Sub": f"s3://${{DataBucket}}/{registry}"},
            {"Ref": "ModelDataUrl"},
        ]
    }
    # The server answers /ping without a default model only in multi-model mode.
    assert container["Environment"]["BYOM_MULTI_MODEL"] == {"Ref": "MultiModel"}
    (artifact,) = granting("ModelRole", "s3:GetObject")
    condition, multi, single = artifact["Resource"]["Fn::If"]
    assert condition == "IsMultiModel"
    assert multi == {"Fn::Sub": f"${{DataBucket.Arn}}/{registry}*"}
    assert "ModelDataUrl" in references(single) and "DataBucket" not in references(single)
    # SageMaker only downloads the objects TargetModel names: no listing.
    assert granting("ModelRole", "s3:ListBucket") == []
    assert "--multi-model" in DEPLOY_SH.read_text()
    assert '"MultiModel=$multi_model"' in DEPLOY_SH.read_text()


def test_tracing_alarms_and_dashboard() -> None:
    for name, function in resources("AWS::Lambda::Function").items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
    alarms = resources("AWS::CloudWatch::Alarm")
    watched = json.dumps(alarms)
    for queue in ("IngestDeadLetterQueue", "SchedulerDeadLetterQueue", "StatusDeadLetterQueue"):
        assert queue in watched
    assert "FailedJobsRule" in watched
    assert "Invocation5XXErrors" in watched
    for name, alarm in alarms.items():
        if name == "ComponentWakeAlarm":  # acts on a scaling policy: endpoint modes test
            continue
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
    body = resource("Dashboard")["Properties"]["DashboardBody"]["Fn::Sub"][0]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    assert len(widgets) >= 6


def test_image_build_trigger_code_compiles() -> None:
    code = resource("ImageBuildTrigger")["Properties"]["Code"]["ZipFile"]
    compile(code, "index.py", "exec")
    assert resource("Images")["Properties"]["ImageTag"] == {"Ref": "ImageTag"}
    for name in ("JobDefinition", "Model"):
        assert resource(name)["DependsOn"] == "Images"


class _FakeAwsClient:
    """A boto3 client that records every call; enough for the custom resource's code."""

    def __init__(self, service: str, calls: list[tuple[str, str, dict[str, Any]]]) -> None:
        self.service, self.calls = service, calls
        self.exceptions = types.SimpleNamespace(
            ParameterNotFound=type("ParameterNotFound", (Exception,), {})
        )

    def __getattr__(self, operation: str) -> Any:
        def call(**kwargs: Any) -> dict[str, Any]:
            self.calls.append((self.service, operation, kwargs))
            return {"build": {"id": "byom-t-images:1"}}

        return call


def run_image_build_trigger(
    request_type: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[tuple[str, str, dict[str, Any]]], list[dict[str, Any]], str]:
    """Run the custom resource's inline code with recording fakes of boto3 and urlopen.

    Returns the AWS calls, the responses sent to CloudFormation, and the URL.
    """
    calls: list[tuple[str, str, dict[str, Any]]] = []
    responses: list[dict[str, Any]] = []
    fake_boto3 = types.ModuleType("boto3")
    fake_boto3.client = lambda service: _FakeAwsClient(service, calls)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "boto3", fake_boto3)

    def urlopen(request: urllib.request.Request, timeout: float) -> io.BytesIO:
        assert isinstance(request.data, bytes)
        responses.append({"url": request.full_url, **json.loads(request.data)})
        return io.BytesIO()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    function = resource("ImageBuildTrigger")["Properties"]
    variables = function.get("Environment", {}).get("Variables", {})
    parameter = variables.get("RESPONSE_URL_PARAMETER", {"Fn::Sub": "unset"})["Fn::Sub"]
    monkeypatch.setenv("RESPONSE_URL_PARAMETER", parameter.replace("${Stage}", "t"))
    url = "https://cfn-responses.s3.amazonaws.com/stack%7CImages%7Cr1?X-Amz-Signature=0ff1ce"
    event = {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/byom-t/1",
        "RequestId": "r1",
        "LogicalResourceId": "Images",
        "PhysicalResourceId": "byom-t-images:0",
        "ResourceProperties": {"Project": "byom-t-images", "ImageTag": "1"},
    }
    namespace: dict[str, Any] = {}
    exec(compile(function["Code"]["ZipFile"], "index.py", "exec"), namespace)
    namespace["handler"](event, None)
    return calls, responses, url


def test_image_build_gets_the_response_url_only_as_a_secure_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls, responses, url = run_image_build_trigger("Create", monkeypatch)
    assert responses == []  # the build answers CloudFormation, not the function
    ((_, _, started),) = [call for call in calls if call[:2] == ("codebuild", "start_build")]
    overrides = {item["name"]: item for item in started["environmentVariablesOverride"]}
    # Nothing the build's API shows holds the URL: it is in a SecureString ...
    assert not [item for item in overrides.values() if url in item["value"]]
    ((_, _, stored),) = [call for call in calls if call[:2] == ("ssm", "put_parameter")]
    assert stored["Value"] == url
    assert stored["Type"] == "SecureString"
    assert overrides["CFN_RESPONSE_URL"] == {
        "name": "CFN_RESPONSE_URL",
        "value": stored["Name"],
        "type": "PARAMETER_STORE",
    }
    # ... and the build still gets every variable its response needs.
    finally_script = "\n".join(yaml.safe_load(BUILDSPEC.read_text())["phases"]["build"]["finally"])
    needed = set(re.findall(r"os\.environ\['([A-Z_]+)'\]", finally_script)) - {"CODEBUILD_BUILD_ID"}
    assert needed | {"CFN_RESPONSE_URL"} <= set(overrides)
    # The function may write that parameter, and the build may read it.
    arn = (
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
        + resource("ImageBuildTrigger")["Properties"]["Environment"]["Variables"][
            "RESPONSE_URL_PARAMETER"
        ]["Fn::Sub"]
    )
    (write,) = granting("ImageBuildTriggerRole", "ssm:PutParameter")
    assert write["Resource"] == {"Fn::Sub": arn}
    (read,) = granting("ImageBuildRole", "ssm:GetParameters")
    assert read["Resource"] == {"Fn::Sub": arn}


def test_image_build_trigger_removes_the_parameter_on_delete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls, responses, url = run_image_build_trigger("Delete", monkeypatch)
    assert [call[:2] for call in calls] == [("ssm", "delete_parameter")]
    (response,) = responses
    assert response["url"] == url
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == "byom-t-images:0"
    (delete,) = granting("ImageBuildTriggerRole", "ssm:DeleteParameter")
    assert (
        delete["Resource"] == granting("ImageBuildTriggerRole", "ssm:PutParameter")[0]["Resource"]
    )


def test_buildspec_builds_both_images_from_the_repository_root() -> None:
    spec = yaml.safe_load(BUILDSPEC.read_text())
    assert spec["version"] == 0.2
    script = "\n".join(spec["phases"]["build"]["commands"])
    assert "services/inference_worker/Dockerfile" in script
    assert "model/server/Dockerfile" in script
    assert "model/server/Dockerfile.gpu" in script
    assert WORKER_DOCKERFILE.exists()
    assert "CFN_RESPONSE_URL" in "\n".join(spec["phases"]["build"]["finally"])
    variables = {
        variable["Name"]
        for variable in resource("ImageBuildProject")["Properties"]["Environment"][
            "EnvironmentVariables"
        ]
    }
    assert {"WORKER_REPOSITORY_URI", "MODEL_SERVER_REPOSITORY_URI", "IMAGE_TAG"} <= variables
    assert set(re.findall(r"\$\{?([A-Z_]+_URI)\}?", script)) <= variables
    assert "ENDPOINT_ACCELERATOR" in script and "ENDPOINT_ACCELERATOR" in variables


def test_endpoint_accelerator_picks_the_image_the_ami_and_the_build() -> None:
    template = load_template()
    parameter = template["Parameters"]["EndpointAccelerator"]
    assert parameter["Default"] == "cpu" and set(parameter["AllowedValues"]) == {"cpu", "gpu"}
    condition = {"Fn::Equals": [{"Ref": "EndpointAccelerator"}, "gpu"]}
    assert template["Conditions"]["UsesGpu"] == condition
    # The GPU build of the same code is a tag of the same repository ...
    repository = "${ModelServerRepository.RepositoryUri}"
    image = resource("Model")["Properties"]["PrimaryContainer"]["Image"]
    assert image == {
        "Fn::If": [
            "UsesGpu",
            {"Fn::Sub": f"{repository}:${{ImageTag}}-gpu"},
            {"Fn::Sub": f"{repository}:${{ImageTag}}"},
        ]
    }
    # ... so the endpoint pulls and the build pushes it with the permissions they had.
    (pull,) = granting("ModelRole", "ecr:BatchGetImage")
    assert pull["Resource"] == {"Fn::GetAtt": ["ModelServerRepository", "Arn"]}
    (push,) = granting("ImageBuildRole", "ecr:PutImage")
    assert {"Fn::GetAtt": ["ModelServerRepository", "Arn"]} in push["Resource"]
    # ECR takes tags of at most 128 characters, "-gpu" included.
    pattern = template["Parameters"]["ImageTag"]["AllowedPattern"]
    longest = re.search(r"\{1,(\d+)\}", pattern)
    assert longest is not None and int(longest.group(1)) + len("-gpu") <= 128
    # The driver the CUDA image needs, on GPU endpoints only.
    (variant,) = resource("EndpointConfig")["Properties"]["ProductionVariants"]
    assert variant["InferenceAmiVersion"] == {
        "Fn::If": ["UsesGpu", GPU_AMI, {"Ref": "AWS::NoValue"}]
    }
    assert GPU_AMI in sagemaker_enum("ProductionVariantInferenceAmiVersion")
    # The build makes the GPU image when the parameter says so, and switching to
    # gpu with unchanged code (the same ImageTag) still starts a build.
    variables = {
        variable["Name"]: variable["Value"]
        for variable in resource("ImageBuildProject")["Properties"]["Environment"][
            "EnvironmentVariables"
        ]
    }
    assert variables["ENDPOINT_ACCELERATOR"] == {"Ref": "EndpointAccelerator"}
    assert resource("Images")["Properties"]["Accelerator"] == {"Ref": "EndpointAccelerator"}
    # deploy.sh passes it as any override; its usage shows how.
    assert "EndpointInstanceType=ml.g5.xlarge EndpointAccelerator=gpu" in DEPLOY_SH.read_text()


def test_gpu_accelerator_is_refused_on_an_instance_without_a_gpu() -> None:
    parameters = load_template()["Parameters"]
    rule = load_template()["Rules"]["GpuNeedsAGpuInstance"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "EndpointAccelerator"}, "gpu"]}
    (assertion,) = rule["Assertions"]
    allowed, value = assertion["Assert"]["Fn::Contains"]
    assert value == {"Ref": "EndpointInstanceType"}
    hosting = sagemaker_enum("ProductionVariantInstanceType")
    instance_type = parameters["EndpointInstanceType"]
    for name in allowed:
        assert name in hosting, name
        assert name.startswith(("ml.g", "ml.p")), name
        assert re.fullmatch(instance_type["AllowedPattern"], name), name
    # Every size of each listed family, and no CPU type (the default among them).
    families = {name.rsplit(".", 1)[0] for name in allowed}
    assert {name for name in hosting if name.rsplit(".", 1)[0] in families} == set(allowed)
    assert instance_type["Default"] not in allowed
    assert {"ml.g5.xlarge", "ml.g6.xlarge"} <= set(allowed)


# ------------------------------------------------------------------ deploy script and docs


def test_deploy_script_passes_every_required_parameter() -> None:
    text = DEPLOY_SH.read_text()
    block = text[text.index("--parameter-overrides") :]
    passed = set(re.findall(r'^\s+"([A-Za-z]+)=', block, re.MULTILINE))
    parameters = load_template()["Parameters"]
    assert passed <= set(parameters)
    required = {name for name, parameter in parameters.items() if "Default" not in parameter}
    assert required <= passed
    assert "aws cloudformation deploy" in text
    assert "--capabilities CAPABILITY_IAM" in text


def test_docs_list_what_motos_cloudformation_cannot_create() -> None:
    from moto.cloudformation.parsing import get_model_map

    supported = set(get_model_map())
    unsupported = {
        item["Type"]
        for item in load_template()["Resources"].values()
        if item["Type"] not in supported
    }
    assert unsupported
    text = "\n".join(path.read_text() for path in DEPLOY_DOCS if path.exists())
    missing = sorted(kind for kind in unsupported if f"`{kind}`" not in text)
    assert not missing, f"the deployment docs do not list {missing}"


# ------------------------------------------------------------------ packaging


def test_lambda_bundle_holds_services_not_worker_or_tests() -> None:
    names = {
        path.relative_to(REPO).as_posix()
        for path in package_lambda.collect(package_lambda.LAMBDA_SOURCES)
    }
    assert "services/ingest/handler.py" in names
    assert "shared/settings.py" in names
    assert not any(name.startswith(("services/inference_worker/", "tests/")) for name in names)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_source_bundle_leaves_out_model_artifacts(tmp_path: Path) -> None:
    (tmp_path / "model" / "artifacts").mkdir(parents=True)
    (tmp_path / "model" / "artifacts" / "xgboost-model.json").write_text("{}")
    (tmp_path / "model" / "server").mkdir()
    (tmp_path / "model" / "server" / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "model" / "__pycache__").mkdir()
    (tmp_path / "model" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    files = package_lambda.collect(["model"], tmp_path)
    assert [path.relative_to(tmp_path).as_posix() for path in files] == ["model/server/Dockerfile"]


def test_archives_are_reproducible(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "xgboost-model.json").write_text('{"learner": {}}')
    # The model package deploy.sh ships (model.package pack), by content hash.
    from model.package import pack

    pack(model_dir, tmp_path / "a.tar.gz")
    (model_dir / "xgboost-model.json").touch()
    pack(model_dir, tmp_path / "b.tar.gz")
    first = package_lambda.content_hash(tmp_path / "a.tar.gz")
    assert first == package_lambda.content_hash(tmp_path / "b.tar.gz")
    import tarfile

    with tarfile.open(tmp_path / "a.tar.gz") as archive:
        assert archive.getnames() == ["xgboost-model.json"]

    source = tmp_path / "f.py"
    source.write_text("x = 1\n")
    package_lambda.write_zip(tmp_path / "a.zip", [(source, "f.py")])
    source.touch()
    package_lambda.write_zip(tmp_path / "b.zip", [(source, "f.py")])
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert archive.namelist() == ["f.py"]
