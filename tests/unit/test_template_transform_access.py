"""The template's S3 access for transform jobs and for ``byom retry``.

Transform jobs read their objects from anywhere in the data bucket and write
their ``.out`` files anywhere in it, except under byom's own prefixes (input/,
staging/, models/: the API refuses those); every service is told so
(BYOM_TRANSFORM_BUCKETS). Every role that ends jobs keeps the job's finished
work in staging for a retry (shared/resume.py); only the functions whose code
ends jobs (shared/endings.py) remove a failed object's ``.out``
(shared/transform_end.py), which may be anywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from tests.unit.test_template import (
    REPO,
    as_list,
    granting,
    lambda_environments,
    object_resources,
    resource,
    resources,
    worker_environment,
)

API_ROLE = "TransformApiRole"
DATA_BUCKET_ARN = {"Fn::GetAtt": ["DataBucket", "Arn"]}
ANYWHERE = "*"  # object_resources' name for "${DataBucket.Arn}/*"
BYOM_OWN = {"input/*", "staging/*", "models/*"}


def ending_roles() -> set[str]:
    return {
        name
        for name, role in resources("AWS::IAM::Role").items()
        if {"Ref": "JobEndingPolicy"} in role["Properties"].get("ManagedPolicyArns", [])
    }


def lists_the_whole_bucket(role: str) -> bool:
    return any(
        statement["Resource"] == DATA_BUCKET_ARN and "Condition" not in statement
        for statement in granting(role, "s3:ListBucket")
    )


def denied(role: str, action: str) -> set[str]:
    """The data-bucket key patterns a role is explicitly denied ``action`` on."""
    properties = resource(role)["Properties"]
    documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    documents += [
        resource(arn["Ref"])["Properties"]["PolicyDocument"]
        for arn in properties.get("ManagedPolicyArns", [])
        if set(arn) == {"Ref"}
    ]
    found: set[str] = set()
    for document in documents:
        for statement in document["Statement"]:
            if statement["Effect"] != "Deny" or action not in as_list(statement["Action"]):
                continue
            for item in as_list(statement["Resource"]):
                text: str = item.get("Fn::Sub", "") if isinstance(item, dict) else ""
                found.add(text.removeprefix("${DataBucket.Arn}/"))
    return found


def test_every_function_that_ends_jobs_keeps_their_work_for_a_retry() -> None:
    # shared/resume.keep_finished copies staging/<job>/... to staging/kept/<job>/...
    # (the managed copy: HEAD and GET of the source, PUT or a multipart copy of
    # the target) before the ending removes the job's staging.
    enders = ending_roles()
    assert {"StatusRole", "ReaperRole", "DeadLettersRole", "IngestRole", API_ROLE} <= enders
    for role in enders:
        for action in (
            "s3:GetObject",
            "s3:PutObject",
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
        ):
            assert object_resources(role, action) & {"staging/*", ANYWHERE}, (role, action)


def test_transform_objects_are_read_from_anywhere_in_the_data_bucket() -> None:
    # The API lists S3Prefix and reads manifests and ModelDataUrl; ingest inflates
    # Gzip objects; the workers read their chunks.
    assert lists_the_whole_bucket(API_ROLE)
    for role in (API_ROLE, "IngestRole", "WorkerJobRole"):
        assert ANYWHERE in object_resources(role, "s3:GetObject"), role
    # Still only the data bucket: no other bucket's objects.
    for role in resources("AWS::IAM::Role"):
        for statement in granting(role, "s3:GetObject"):
            for item in as_list(statement["Resource"]):
                assert "DataBucket" in str(item) or "ArtifactBucket" in str(item), (role, item)


def test_status_writes_a_transform_output_anywhere_but_byom_s_own_prefixes() -> None:
    # The .out is assembled where the job says (a multipart upload of copied parts).
    for action in ("s3:PutObject", "s3:AbortMultipartUpload"):
        assert ANYWHERE in object_resources("StatusRole", action), action
    assert denied("StatusRole", "s3:PutObject") >= {"input/*", "models/*"}
    # A .out under input/ would start an upload's job; only status writes one.
    for role in resources("AWS::IAM::Role"):
        if role != "StatusRole":
            assert ANYWHERE not in object_resources(role, "s3:PutObject"), role


def imported_modules(module: str) -> set[str]:
    """The byom modules ``module`` imports, at any depth (function-level imports too)."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = REPO / Path(*name.split(".")).with_suffix(".py")
        if not path.is_file():
            continue  # a package's attribute (``from shared import aws``), or not byom's
        seen.add(name)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                pending += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                pending.append(node.module)
                pending += [f"{node.module}.{alias.name}" for alias in node.names]
    return seen


def transform_object_enders() -> set[str]:
    """The roles of the functions whose code can end a job (shared/endings.py, which
    removes a failed transform object's .out: shared/transform_end.py)."""
    enders = set()
    for function in resources("AWS::Lambda::Function").values():
        properties = function["Properties"]
        handler = properties["Handler"].rsplit(".", 1)[0]
        if "shared.endings" in imported_modules(handler):
            enders.add(properties["Role"]["Fn::GetAtt"][0])
    return enders


def test_only_functions_that_end_jobs_may_remove_a_transform_output_anywhere() -> None:
    # shared/transform_end.remove_own_output HEADs the .out (404 only with
    # ListBucket, else a missing one is 403 and the ending fails) and deletes it
    # when it is the job's own; uploads and models are never deleted. A role
    # whose function never ends a job (the scheduler) gets none of this: it keeps
    # JobEndingPolicy's staging grants only.
    removers = transform_object_enders()
    assert removers == {"IngestRole", "StatusRole", "DeadLettersRole", "ReaperRole", API_ROLE}
    for role in removers:
        assert lists_the_whole_bucket(role), role
        assert ANYWHERE in object_resources(role, "s3:GetObject"), role
        assert ANYWHERE in object_resources(role, "s3:DeleteObject"), role
        assert denied(role, "s3:DeleteObject") >= {"input/*", "models/*"}, role
    for role in ending_roles() - removers:
        assert not lists_the_whole_bucket(role), role
        assert ANYWHERE not in object_resources(role, "s3:GetObject"), role
        assert ANYWHERE not in object_resources(role, "s3:DeleteObject"), role
    assert ending_roles() - removers == {"SchedulerRole"}


def test_every_service_is_told_the_data_bucket_holds_transform_objects() -> None:
    services: dict[str, dict[str, Any]] = lambda_environments() | {
        "JobDefinition": worker_environment()
    }
    for service, environment in services.items():
        assert environment.get("BYOM_TRANSFORM_BUCKETS") == {"Ref": "DataBucket"}, service
