"""The template's share of SageMaker Batch Transform on AWS.

The SageMaker API runs as a Lambda function behind a function URL that only
IAM-signed requests reach (``byom transform``, cli/transform.py); its models and
transform jobs live in their own table; the functions that end jobs may settle a
transform job and send SageMaker's state-change event to the default bus.
"""

from __future__ import annotations

import re
from typing import Any

from cli import transform
from infra import package_lambda
from shared.settings import Settings
from shared.transform import DEFAULT_BUS
from tests.unit.test_template import (
    DEPLOY_SH,
    as_list,
    granting,
    lambda_environments,
    listable_prefixes,
    load_template,
    object_resources,
    resource,
    resources,
    worker_environment,
)

API_ROLE = "TransformApiRole"
API_FUNCTION = "TransformApiFunction"
DEFAULT_BUS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}"
    f":event-bus/{DEFAULT_BUS}"
}
TABLE_ARN = {"Fn::GetAtt": ["SageMakerTable", "Arn"]}


def resources_of(role: str, action: str) -> list[Any]:
    return [item for s in granting(role, action) for item in as_list(s["Resource"])]


def ending_roles() -> set[str]:
    return {
        name
        for name, role in resources("AWS::IAM::Role").items()
        if {"Ref": "JobEndingPolicy"} in role["Properties"].get("ManagedPolicyArns", [])
    }


def test_sagemaker_table_is_on_demand_encrypted_and_recoverable() -> None:
    table = resource("SageMakerTable")["Properties"]
    assert table["TableName"] == {"Fn::Sub": "byom-${Stage}-sagemaker"}
    assert table["TableName"]["Fn::Sub"].endswith(
        Settings.model_fields["sagemaker_table"].default.removeprefix("byom")
    )
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    # SageMaker keeps transform jobs; so does byom.
    assert "TimeToLiveSpecification" not in table
    assert load_template()["Outputs"]["SageMakerTableName"]["Value"] == {"Ref": "SageMakerTable"}


def test_sagemaker_api_is_reached_only_with_iam_signatures() -> None:
    function = resource(API_FUNCTION)["Properties"]
    assert function["Handler"] == "services.transform.handler.handler"
    assert function["Code"] == {
        "S3Bucket": {"Ref": "ArtifactBucket"},
        "S3Key": {"Ref": "LambdaCodeKey"},
    }
    assert "services/transform" in package_lambda.LAMBDA_SOURCES
    (name,) = resources("AWS::Lambda::Url")
    url = resource(name)["Properties"]
    assert url["AuthType"] == "AWS_IAM"
    assert url["TargetFunctionArn"] == {"Fn::GetAtt": [API_FUNCTION, "Arn"]}
    # No resource policy lets anyone else invoke it, through the URL or directly.
    for permission in resources("AWS::Lambda::Permission").values():
        assert references_function(permission) != API_FUNCTION
    # byom transform finds the URL among the stack's outputs.
    output = load_template()["Outputs"][transform.OUTPUT_API_URL]
    assert output["Value"] == {"Fn::GetAtt": [name, "FunctionUrl"]}


def references_function(permission: dict[str, Any]) -> str | None:
    target = permission["Properties"]["FunctionName"]
    if isinstance(target, dict):
        found = target.get("Ref") or target.get("Fn::GetAtt", [None])[0]
        return str(found) if found else None
    return None


def test_sagemaker_api_role_is_least_privilege() -> None:
    (table,) = [s for s in granting(API_ROLE, "dynamodb:PutItem") if s["Resource"] == TABLE_ARN]
    assert table["Resource"] == TABLE_ARN
    assert set(table["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:Scan",
    }
    # Inputs, manifests and ModelDataUrl are read from the data bucket only, anywhere
    # in it (staging/: work kept for a retry when a job ends) ...
    assert object_resources(API_ROLE, "s3:GetObject") == {"*", "staging/*"}
    read = resources_of(API_ROLE, "s3:GetObject")
    assert all(item["Fn::Sub"].startswith("${DataBucket.Arn}/") for item in read)
    assert listable_prefixes(API_ROLE) == {"*", "staging/*"}
    # ... packages are registered into the model registry, and nothing else is
    # written but kept work in staging/.
    assert object_resources(API_ROLE, "s3:PutObject") == {"models/*", "staging/*"}
    assert len(resources_of(API_ROLE, "s3:PutObject")) == 2
    # Staging, and a stopped object's own .out (never under input/ or models/).
    assert object_resources(API_ROLE, "s3:DeleteObject") == {"staging/*", "*"}
    # One message per object to ingest; the state-change event on the default bus.
    assert resources_of(API_ROLE, "sqs:SendMessage") == [{"Fn::GetAtt": ["IngestQueue", "Arn"]}]
    assert DEFAULT_BUS_ARN in resources_of(API_ROLE, "events:PutEvents")
    # StopTransformJob ends the objects' jobs as any job ends.
    assert API_ROLE in ending_roles()
    assert granting(API_ROLE, "batch:TerminateJob")
    # It never scores: the objects' jobs do.
    assert not granting(API_ROLE, "sagemaker:InvokeEndpoint")
    assert not granting(API_ROLE, "batch:SubmitJob")


def test_every_function_that_ends_jobs_may_settle_a_transform_job() -> None:
    # The last object's ending settles the transform job and sends SageMaker's
    # event, whichever function learns of it (status, the reaper, dead letters...).
    enders = ending_roles()
    assert {"StatusRole", "IngestRole", "ReaperRole", "DeadLettersRole", API_ROLE} <= enders
    for role in enders:
        settle = [
            s
            for s in granting(role, "dynamodb:UpdateItem")
            if as_list(s["Resource"]) == [TABLE_ARN]
        ]
        assert settle, role
        assert DEFAULT_BUS_ARN in resources_of(role, "events:PutEvents"), role
    # Only the default bus and byom's own: no other account's, no other bus.
    for role in resources("AWS::IAM::Role"):
        for target in resources_of(role, "events:PutEvents"):
            assert target in (DEFAULT_BUS_ARN, {"Fn::GetAtt": ["EventBus", "Arn"]}), role
    # The .out files are assembled where their jobs say, in the data bucket.
    assert "*" in object_resources("StatusRole", "s3:PutObject")


def test_state_change_events_carry_a_source_eventbridge_accepts() -> None:
    # PutEvents refuses "aws." sources from anyone but AWS's own services.
    environments = [*lambda_environments().values(), worker_environment()]
    (source,) = {environment["BYOM_TRANSFORM_EVENT_SOURCE"] for environment in environments}
    assert isinstance(source, str) and not source.startswith("aws."), source
    assert Settings.model_fields["transform_event_source"].default == "aws.sagemaker"
    # Only that source may go to the default bus.
    (statement,) = [
        s
        for s in resource("JobEndingPolicy")["Properties"]["PolicyDocument"]["Statement"]
        if s["Resource"] == DEFAULT_BUS_ARN
    ]
    assert statement["Condition"] == {"StringEquals": {"events:source": source}}


def test_every_function_is_alarmed_and_logged() -> None:
    functions = {
        name
        for name, function in resources("AWS::Lambda::Function").items()
        if "ZipFile" not in function["Properties"]["Code"]
    }
    metrics = resource("FunctionErrorsAlarm")["Properties"]["Metrics"]
    watched = {
        dimension["Value"]["Ref"]
        for metric in metrics
        if "MetricStat" in metric
        for dimension in metric["MetricStat"]["Metric"]["Dimensions"]
    }
    assert watched == functions
    (expression,) = [m["Expression"] for m in metrics if "Expression" in m]
    assert expression.count("FILL(") == len(functions)
    groups = {
        item["Ref"] for item in load_template()["Outputs"]["LogGroupNames"]["Value"]["Fn::Join"][1]
    }
    for name in functions:
        logging = resource(name)["Properties"]["LoggingConfig"]["LogGroup"]
        assert logging["Ref"] in groups, name


def test_deploy_script_tells_how_to_run_a_transform_job() -> None:
    text = DEPLOY_SH.read_text()
    assert transform.OUTPUT_API_URL in text
    assert "byom --stack" in text and "transform --cli-input-json" in text
    # The jobs' models are loaded by TargetModel: a single-model stack is told so.
    assert re.search(r'transform_note=".*--multi-model', text)
