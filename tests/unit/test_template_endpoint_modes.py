"""EndpointMode: what the template deploys in each mode, resolved as CloudFormation would.

moto creates neither inference components nor Application Auto Scaling or
CloudWatch alarm resources (test_cloudformation.py deploys what it can in every
mode), so the wiring of each mode is read here from the template with its
conditions resolved: the variant's settings, the inference component, the
scalable target and its policies, the wake-up alarm, the IAM of the scheduler's
wake-up call, the services' settings, and the rules that refuse what a mode
cannot do. Values SageMaker and Application Auto Scaling accept are taken from
botocore's models of their APIs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
import pytest

from shared.settings import Settings
from tests.unit.template_conditions import deployed_resources, refusals
from tests.unit.test_template import DEPLOY_SH, REPO, as_list, load_template

MODES = ("always-on", "serverless", "scale-to-zero")
COMPONENT = {"Fn::Sub": "byom-${Stage}-model-ic"}
COMPONENT_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
    ":inference-component/byom-${Stage}-model-ic"
}
ENDPOINT_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
    ":endpoint/byom-${Stage}-model"
}
WAKE_ACTIONS = {
    "sagemaker:DescribeInferenceComponent",
    "sagemaker:UpdateInferenceComponentRuntimeConfig",
}
DOC = REPO / "docs" / "endpoint-modes.md"


def _shape(service: str, name: str) -> Any:
    return botocore.session.get_session().get_service_model(service).shape_for(name)


def _variant(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (variant,) = resources["EndpointConfig"]["Properties"]["ProductionVariants"]
    assert isinstance(variant, dict)
    return variant


def _allowed(resources: dict[str, dict[str, Any]], role: str) -> dict[str, list[Any]]:
    """action -> the resources a role may use it on: inline policies, and managed ones
    attached by the role (ManagedPolicyArns) or by the policy (Roles)."""
    properties = resources[role]["Properties"]
    documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    for name, item in resources.items():
        if item["Type"] != "AWS::IAM::ManagedPolicy":
            continue
        attached = {"Ref": name} in properties.get("ManagedPolicyArns", [])
        if attached or {"Ref": role} in item["Properties"].get("Roles", []):
            documents.append(item["Properties"]["PolicyDocument"])
    allowed: dict[str, list[Any]] = {}
    for document in documents:
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            for action in as_list(statement["Action"]):
                allowed.setdefault(action, []).extend(as_list(statement["Resource"]))
    return allowed


def _environments(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {
        name: item["Properties"]["Environment"]["Variables"]
        for name, item in resources.items()
        if item["Type"] == "AWS::Lambda::Function" and "ZipFile" not in item["Properties"]["Code"]
    }
    container = resources["JobDefinition"]["Properties"]["ContainerProperties"]
    found["JobDefinition"] = {item["Name"]: item["Value"] for item in container["Environment"]}
    return found


# ------------------------------------------------------------------ parameters


def test_endpoint_mode_parameters_take_what_sagemaker_accepts() -> None:
    parameters = load_template()["Parameters"]
    assert set(parameters["EndpointMode"]["AllowedValues"]) == set(MODES)
    serverless = _shape("sagemaker", "ProductionVariantServerlessConfig").members
    memory = serverless["MemorySizeInMB"].metadata
    assert [int(value) for value in parameters["ServerlessMemorySizeInMB"]["AllowedValues"]] == (
        list(range(memory["min"], memory["max"] + 1, 1024))
    )
    concurrency = serverless["MaxConcurrency"].metadata
    assert parameters["ServerlessMaxConcurrency"]["MinValue"] == concurrency["min"]
    assert parameters["ServerlessMaxConcurrency"]["MaxValue"] == concurrency["max"]
    cores = _shape("sagemaker", "InferenceComponentComputeResourceRequirements").members
    assert (
        parameters["ComponentCpuCores"]["MinValue"]
        >= cores["NumberOfCpuCoresRequired"].metadata["min"]
    )
    assert (
        parameters["ComponentMemoryMiB"]["MinValue"]
        >= cores["MinMemoryRequiredInMb"].metadata["min"]
    )
    # The services' own default bound, so the template changes nothing unasked.
    wait = parameters["EndpointWaitSeconds"]
    assert float(wait["Default"]) == Settings.model_fields["endpoint_wait_seconds"].default
    assert parameters["ScaleInCooldownSeconds"]["MinValue"] >= 0


def test_the_default_mode_is_the_one_the_docs_explain() -> None:
    default = load_template()["Parameters"]["EndpointMode"]["Default"]
    text = DOC.read_text()
    assert f"default is `{default}`" in text
    for mode in MODES:
        assert f"`{mode}`" in text
    # Figures not measured say where they come from.
    assert "not measured" in text
    readme = (REPO / "README.md").read_text()
    assert "docs/endpoint-modes.md" in readme


# ------------------------------------------------------------------ each mode


def test_always_on_deploys_todays_endpoint() -> None:
    resources = deployed_resources(EndpointMode="always-on")
    variant = _variant(resources)
    assert variant["ModelName"] == {"Fn::GetAtt": ["Model", "ModelName"]}
    assert variant["InstanceType"] == {"Ref": "EndpointInstanceType"}
    assert variant["InitialInstanceCount"] == {"Ref": "EndpointInstanceCount"}
    assert not {"ServerlessConfig", "ManagedInstanceScaling", "RoutingConfig"} & set(variant)
    assert "ExecutionRoleArn" not in resources["EndpointConfig"]["Properties"]
    assert resources["Model"]["Properties"]["EnableNetworkIsolation"] is True
    target = resources["EndpointScaling"]["Properties"]
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert target["MinCapacity"] == {"Ref": "EndpointInstanceCount"}
    policy = resources["EndpointScalingPolicy"]["Properties"]
    metric = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert not [name for name in resources if "Component" in name]


def test_serverless_has_no_instances_and_no_instance_scaling() -> None:
    resources = deployed_resources(EndpointMode="serverless")
    variant = _variant(resources)
    assert variant["ServerlessConfig"] == {
        "MemorySizeInMB": {"Ref": "ServerlessMemorySizeInMB"},
        "MaxConcurrency": {"Ref": "ServerlessMaxConcurrency"},
    }
    assert variant["ModelName"] == {"Fn::GetAtt": ["Model", "ModelName"]}
    for instance_only in ("InstanceType", "InitialInstanceCount", "InferenceAmiVersion"):
        assert instance_only not in variant, instance_only
    assert not {"ManagedInstanceScaling", "RoutingConfig"} & set(variant)
    scaling = [
        name for name, item in resources.items() if item["Type"].startswith("AWS::ApplicationAuto")
    ]
    assert scaling == []
    assert "InferenceComponent" not in resources
    # Serverless Inference does not support network isolation: dropped here only.
    assert "EnableNetworkIsolation" not in resources["Model"]["Properties"]


@pytest.mark.parametrize("accelerator", ["cpu", "gpu"])
def test_scale_to_zero_hosts_an_inference_component_on_instances_that_go_to_zero(
    accelerator: str,
) -> None:
    instance = "ml.g5.xlarge" if accelerator == "gpu" else "ml.m5.large"
    resources = deployed_resources(
        EndpointMode="scale-to-zero", EndpointAccelerator=accelerator, EndpointInstanceType=instance
    )
    config = resources["EndpointConfig"]["Properties"]
    assert config["ExecutionRoleArn"] == {"Fn::GetAtt": ["ModelRole", "Arn"]}
    variant = _variant(resources)
    assert "ModelName" not in variant
    assert variant["InstanceType"] == {"Ref": "EndpointInstanceType"}
    assert variant["ManagedInstanceScaling"] == {
        "Status": "ENABLED",
        "MinInstanceCount": 0,
        "MaxInstanceCount": {"Ref": "EndpointMaxInstanceCount"},
    }
    strategies = _shape("sagemaker", "RoutingStrategy").enum
    assert variant["RoutingConfig"]["RoutingStrategy"] in strategies
    assert ("InferenceAmiVersion" in variant) == (accelerator == "gpu")
    assert resources["Model"]["Properties"]["EnableNetworkIsolation"] is True

    component = resources["InferenceComponent"]["Properties"]
    assert component["InferenceComponentName"] == COMPONENT
    assert component["EndpointName"] == {"Fn::GetAtt": ["Endpoint", "EndpointName"]}
    assert component["VariantName"] == variant["VariantName"]
    specification = component["Specification"]
    assert specification["ModelName"] == {"Fn::GetAtt": ["Model", "ModelName"]}
    requirements = specification["ComputeResourceRequirements"]
    assert requirements["NumberOfCpuCoresRequired"] == {"Ref": "ComponentCpuCores"}
    assert requirements["MinMemoryRequiredInMb"] == {"Ref": "ComponentMemoryMiB"}
    assert requirements.get("NumberOfAcceleratorDevicesRequired") == (
        1 if accelerator == "gpu" else None
    )
    assert component["RuntimeConfig"] == {"CopyCount": 1}
    # Instance scaling of always-on is gone; the component's copies scale instead.
    assert "EndpointScaling" not in resources and "EndpointScalingPolicy" not in resources


def test_scale_to_zero_scales_copies_to_zero_and_wakes_on_no_capacity() -> None:
    resources = deployed_resources(EndpointMode="scale-to-zero")
    dimensions = _shape("application-autoscaling", "ScalableDimension").enum
    metrics = _shape("application-autoscaling", "MetricType").enum

    target = resources["ComponentScaling"]
    properties = target["Properties"]
    assert properties["ServiceNamespace"] == "sagemaker"
    assert properties["ScalableDimension"] == "sagemaker:inference-component:DesiredCopyCount"
    assert properties["ScalableDimension"] in dimensions
    assert properties["ResourceId"] == {"Fn::Sub": f"inference-component/{COMPONENT['Fn::Sub']}"}
    assert properties["MinCapacity"] == 0
    assert properties["MaxCapacity"] == {"Ref": "EndpointMaxInstanceCount"}
    assert "InferenceComponent" in as_list(target["DependsOn"])

    # Out under load and in to zero after idle, with the cooldown parameter.
    tracking = resources["ComponentScalingPolicy"]["Properties"]
    assert tracking["ScalingTargetId"] == {"Ref": "ComponentScaling"}
    assert tracking["PolicyType"] == "TargetTrackingScaling"
    configuration = tracking["TargetTrackingScalingPolicyConfiguration"]
    metric = configuration["PredefinedMetricSpecification"]["PredefinedMetricType"]
    assert metric == "SageMakerInferenceComponentInvocationsPerCopy" and metric in metrics
    assert configuration["ScaleInCooldown"] == {"Ref": "ScaleInCooldownSeconds"}
    assert configuration.get("DisableScaleIn", False) is False

    # Back from zero: one copy more whenever the alarm is raised.
    wake = resources["ComponentWakePolicy"]["Properties"]
    assert wake["ScalingTargetId"] == {"Ref": "ComponentScaling"}
    assert wake["PolicyType"] == "StepScaling"
    step = wake["StepScalingPolicyConfiguration"]
    assert step["AdjustmentType"] == "ChangeInCapacity"
    assert step["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]

    alarm = resources["ComponentWakeAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": "ComponentWakePolicy"}]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "AWS/SageMaker",
        "NoCapacityInvocationFailures",
    )
    assert alarm["Dimensions"] == [{"Name": "InferenceComponentName", "Value": COMPONENT}]
    assert alarm["Statistic"] == "Sum"
    # One request that found no copy is enough to raise it.
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == 1 and alarm["EvaluationPeriods"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_scheduler_and_workers_may_call_what_each_mode_needs(mode: str) -> None:
    resources = deployed_resources(EndpointMode=mode)
    scheduler = _allowed(resources, "SchedulerRole")
    worker = _allowed(resources, "WorkerJobRole")
    assert ENDPOINT_ARN in scheduler["sagemaker:InvokeEndpoint"]
    assert ENDPOINT_ARN in worker["sagemaker:InvokeEndpoint"]
    if mode == "scale-to-zero":
        # InvokeEndpoint with InferenceComponentName is authorized on both ARNs.
        assert sorted(map(json.dumps, scheduler["sagemaker:InvokeEndpoint"])) == sorted(
            map(json.dumps, [ENDPOINT_ARN, COMPONENT_ARN])
        )
        assert worker["sagemaker:InvokeEndpoint"].count(COMPONENT_ARN) == 1
        for action in WAKE_ACTIONS:
            assert scheduler[action] == [COMPONENT_ARN], action
            assert action not in worker, action
    else:
        for role in (scheduler, worker):
            assert role["sagemaker:InvokeEndpoint"] == [ENDPOINT_ARN]
            assert not WAKE_ACTIONS & set(role)
    # The ARN names the component the template creates and the services call.
    assert COMPONENT_ARN["Fn::Sub"].endswith("/" + COMPONENT["Fn::Sub"])


@pytest.mark.parametrize("mode", MODES)
def test_services_name_the_component_only_in_scale_to_zero(mode: str) -> None:
    environments = _environments(deployed_resources(EndpointMode=mode))
    expected = COMPONENT if mode == "scale-to-zero" else ""
    for service in ("SchedulerFunction", "JobDefinition"):
        environment = environments[service]
        assert environment["BYOM_INFERENCE_COMPONENT"] == expected, service
        assert environment["BYOM_ENDPOINT_WAIT_SECONDS"] == {"Ref": "EndpointWaitSeconds"}
    if mode == "scale-to-zero":
        component = deployed_resources(EndpointMode=mode)["InferenceComponent"]
        assert component["Properties"]["InferenceComponentName"] == expected


@pytest.mark.parametrize("mode", MODES)
def test_alarms_and_dashboard_watch_the_endpoint_each_mode_has(mode: str) -> None:
    resources = deployed_resources(EndpointMode=mode)
    alarm = resources["EndpointErrorsAlarm"]["Properties"]
    watched = [
        item["MetricStat"]["Metric"]["Dimensions"]
        for item in alarm["Metrics"]
        if "MetricStat" in item
    ]
    assert len(watched) == 2
    for dimensions in watched:
        if mode == "scale-to-zero":
            assert dimensions == [{"Name": "InferenceComponentName", "Value": COMPONENT}]
        else:
            names = {item["Name"] for item in dimensions}
            assert names == {"EndpointName", "VariantName"}
    body, variables = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    capacity = [
        widget
        for widget in widgets
        if any(
            "NoCapacityInvocationFailures" in line
            for line in widget["properties"].get("metrics", [])
        )
    ]
    assert len(capacity) == 1
    (line,) = [
        line
        for line in capacity[0]["properties"]["metrics"]
        if "NoCapacityInvocationFailures" in line
    ]
    assert line[2] == "InferenceComponentName"
    assert "${ComponentName}" in body and variables["ComponentName"] == COMPONENT


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("parameters", "names"),
    [
        (
            {
                "EndpointMode": "serverless",
                "EndpointAccelerator": "gpu",
                "EndpointInstanceType": "ml.g5.xlarge",
            },
            "scale-to-zero",
        ),
        ({"EndpointMode": "serverless", "MultiModel": "true"}, "always-on"),
        ({"EndpointMode": "scale-to-zero", "MultiModel": "true"}, "always-on"),
    ],
)
def test_rules_refuse_what_a_mode_cannot_do(parameters: dict[str, str], names: str) -> None:
    (refusal,) = refusals(parameters)
    assert f"EndpointMode={parameters['EndpointMode']}" in refusal
    # The refusal says which mode to use instead.
    assert f"EndpointMode={names}" in refusal


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"EndpointMode": "always-on", "MultiModel": "true"},
        {"EndpointMode": "serverless"},
        {
            "EndpointMode": "scale-to-zero",
            "EndpointAccelerator": "gpu",
            "EndpointInstanceType": "ml.g5.xlarge",
        },
        {
            "EndpointMode": "always-on",
            "EndpointAccelerator": "gpu",
            "EndpointInstanceType": "ml.g6.xlarge",
        },
    ],
)
def test_rules_accept_what_a_mode_can_do(parameters: dict[str, str]) -> None:
    assert refusals(parameters) == []


def test_multi_model_deploys_always_on() -> None:
    # deploy.sh --multi-model picks the one mode that serves a multi-model endpoint,
    # before the user's own overrides (which may still name another, and be refused).
    text = DEPLOY_SH.read_text()
    assert 'mode_override=("EndpointMode=always-on")' in text
    block = text[text.index("--parameter-overrides") :]
    assert block.index("mode_override") < block.index("overrides[@]")


def test_the_model_role_may_write_the_components_logs() -> None:
    # SageMaker writes an inference component's container logs to a group named
    # after the component, beside the endpoint's.
    resources = deployed_resources(EndpointMode="scale-to-zero")
    logs = _allowed(resources, "ModelRole")["logs:PutLogEvents"]
    group = "log-group:/aws/sagemaker/InferenceComponents/" + COMPONENT["Fn::Sub"] + ":*"
    assert any(item["Fn::Sub"].endswith(group) for item in logs)
