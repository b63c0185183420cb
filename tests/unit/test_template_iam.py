"""The template's IAM: least privilege for every role, checked statement by statement."""

from __future__ import annotations

import json
import re

from shared.settings import Settings
from tests.unit.test_template import (
    ACTIONS_WITHOUT_RESOURCES,
    AWS_MANAGED_POLICIES,
    BATCH_JOB_ARN,
    BYOM_JOB_TAG,
    as_list,
    granting,
    listable_prefixes,
    object_resources,
    policy_documents,
    resource,
    resources,
)

# ------------------------------------------------------------------ IAM

# S3Prefix of a transform job lists anywhere in the data bucket (the API), and a
# failed transform object's missing .out must be 404 wherever it is (every
# function that ends jobs: TransformOutputRemovalPolicy).
WHOLE_BUCKET_LISTERS = {"TransformApiRole/sagemaker-api", "TransformOutputRemovalPolicy"}


def test_no_wildcard_actions_on_wildcard_resources() -> None:
    for name, document in policy_documents():
        for statement in document["Statement"]:
            actions = as_list(statement.get("Action", []))
            assert statement.get("NotAction") is None, name
            if statement["Effect"] == "Deny":
                continue
            for action in actions:
                assert action != "*" and not action.endswith(":*"), f"{name}: {action}"
            if "*" in as_list(statement["Resource"]):
                assert set(actions) <= ACTIONS_WITHOUT_RESOURCES, f"{name}: {actions} on *"


def test_only_known_aws_managed_policies() -> None:
    for name, role in resources("AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            if set(arn) == {"Ref"}:
                assert resource(arn["Ref"])["Type"] == "AWS::IAM::ManagedPolicy"
                continue
            policy = arn["Fn::Sub"].split(":policy/")[1]
            assert policy in AWS_MANAGED_POLICIES, f"{name}: {policy}"


def test_traced_functions_may_write_traces() -> None:
    # Lambda refuses active tracing to a role without X-Ray write permissions.
    xray = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"}
    for name, function in resources("AWS::Lambda::Function").items():
        role = resource(function["Properties"]["Role"]["Fn::GetAtt"][0])
        assert xray in role["Properties"].get("ManagedPolicyArns", []), name


def test_bucket_permissions_use_byoms_prefixes() -> None:
    fields = Settings.model_fields
    prefixes = {
        fields[name].default
        for name in (
            "input_prefix",
            "staging_prefix",
            "output_prefix",
            "errors_prefix",
            "models_prefix",
        )
    }
    granted = [
        statement["Resource"]
        for _, document in policy_documents()
        for statement in document["Statement"]
        if statement["Effect"] == "Allow"
    ]
    used = set(re.findall(r"\$\{DataBucket\.Arn\}/([^*]*)\*", json.dumps(granted)))
    assert used
    # "": the whole data bucket, where transform objects and their .out files may
    # be (test_template_transform_access.py says who may do what there).
    assert used <= prefixes | {""}


def test_list_bucket_is_conditioned_on_byoms_prefixes() -> None:
    fields = Settings.model_fields
    prefixes = {
        fields[name].default + "*"
        for name in (
            "input_prefix",
            "staging_prefix",
            "output_prefix",
            "errors_prefix",
            "models_prefix",
        )
    }
    listing = [
        (name, statement)
        for name, document in policy_documents()
        for statement in document["Statement"]
        if statement["Effect"] == "Allow" and "s3:ListBucket" in as_list(statement["Action"])
    ]
    assert {name for name, _ in listing} >= {"WorkerJobRole/score-chunks", "StatusRole/status"}
    for name, statement in listing:
        if name in WHOLE_BUCKET_LISTERS:
            continue  # transform objects and their .out files may be anywhere
        condition = statement.get("Condition", {})
        assert set(condition) == {"StringLike"}, f"{name} lists the whole bucket"
        assert set(condition["StringLike"]) == {"s3:prefix"}, name
        patterns = set(as_list(condition["StringLike"]["s3:prefix"]))
        assert patterns and patterns <= prefixes, f"{name}: {patterns}"


def test_missing_keys_are_404_where_services_look_for_them() -> None:
    # S3 answers 403 for a missing key unless the caller may list it: ingest HEADs
    # uploads (and reads inflated copies in staging/), workers and status look for
    # chunk outputs. Each may list exactly where it reads; ingest reads transform
    # objects anywhere, and every function that ends jobs HEADs a failed transform
    # object's .out anywhere ("*", TransformOutputRemovalPolicy).
    assert listable_prefixes("IngestRole") == {"input/*", "staging/*", "models/*", "*"}
    assert object_resources("IngestRole", "s3:GetObject") == {"*", "staging/*"}
    assert listable_prefixes("WorkerJobRole") == {"staging/*"}
    assert listable_prefixes("StatusRole") == {"staging/*", "*"}


def test_batch_jobs_are_stopped_only_where_byom_submitted_them() -> None:
    # StopTransformJob stops its objects' arrays as byom cancel does.
    stoppers = {"SchedulerRole", "StatusRole", "ReaperRole", "DeadLettersRole", "TransformApiRole"}
    for role in resources("AWS::IAM::Role"):
        terminate = granting(role, "batch:TerminateJob")
        assert bool(terminate) == (role in stoppers), role
    for name, document in policy_documents():
        for statement in document["Statement"]:
            actions = set(as_list(statement.get("Action", [])))
            if not actions & {"batch:TerminateJob", "batch:CancelJob"}:
                continue
            # Job ARNs are random ids: this account and region, and byom's tag.
            assert statement["Resource"] == BATCH_JOB_ARN, name
            assert statement["Condition"] == {
                "Null": {f"aws:ResourceTag/{BYOM_JOB_TAG}": "false"}
            }, name
    assert '"byom:job-id"' in json.dumps(granting("SchedulerRole", "batch:TagResource"))


def test_functions_that_fail_jobs_may_delete_only_what_a_failed_job_leaves() -> None:
    # A FAILED job keeps no output (shared/endings.remove_output), and status also
    # deletes the errors report of a job that failed while it was assembled. Each
    # may clear staging and a failed transform object's own .out, wherever it is
    # ("*", TransformOutputRemovalPolicy, never under input/ or models/); nothing
    # else may delete results.
    deleting = {
        "IngestRole": {"staging/*", "output/*", "*"},
        "StatusRole": {"staging/*", "output/*", "errors/*", "*"},
        "DeadLettersRole": {"staging/*", "output/*", "*"},
        "ReaperRole": {"staging/*", "output/*", "*"},
    }
    for role in resources("AWS::IAM::Role"):
        granted = object_resources(role, "s3:DeleteObject")
        assert granted == deleting.get(role, granted - {"output/*", "errors/*"}), role


def test_scheduler_finds_earlier_submissions_and_scores_small_files() -> None:
    (listing,) = granting("SchedulerRole", "batch:ListJobs")
    assert listing["Resource"] == "*"
    assert granting("SchedulerRole", "batch:SubmitJob")
    # It ends no job, so it never HEADs a failed transform object's .out: no "*".
    assert object_resources("SchedulerRole", "s3:GetObject") == {"input/*", "staging/*"}
    assert object_resources("SchedulerRole", "s3:PutObject") == {"staging/*"}
    (invoke,) = granting("SchedulerRole", "sagemaker:InvokeEndpoint")
    assert invoke["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
        ":endpoint/byom-${Stage}-model"
    }
    assert invoke["Resource"]["Fn::Sub"].endswith(
        resource("Endpoint")["Properties"]["EndpointName"]["Fn::Sub"]
    )
    (report,) = granting("SchedulerRole", "sqs:SendMessage")
    assert report["Resource"] == {"Fn::GetAtt": ["StatusQueue", "Arn"]}
    function = resource("SchedulerFunction")["Properties"]
    assert function["MemorySize"] >= 512
    assert function["Timeout"] >= 60


def test_each_function_has_its_own_role() -> None:
    roles = [
        function["Properties"]["Role"]["Fn::GetAtt"][0]
        for function in resources("AWS::Lambda::Function").values()
    ]
    assert len(roles) == len(set(roles))
