"""CreateModel, DescribeModel, ListModels, DeleteModel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.transform import registration
from services.transform.listing import page, within
from services.transform.requests import CreateModel, ListModels, ModelNamed, parse
from services.transform.wording import RequestInvalid
from shared import aws
from shared.settings import get_settings
from shared.transform_store import NameTaken, StoredModel, TransformStore


def model_arn(name: str) -> str:
    settings = get_settings()
    # SageMaker's ARNs carry the name in lower case.
    return f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:model/{name.lower()}"


def not_found(name: str) -> RequestInvalid:
    return RequestInvalid(f'Could not find model "{model_arn(name)}".')


def create_model(store: TransformStore, body: dict[str, Any]) -> dict[str, Any]:
    request = parse(CreateModel, body)
    if (request.PrimaryContainer is None) == (request.Containers is None):
        raise RequestInvalid("Exactly one of PrimaryContainer or Containers must be specified.")
    stored = request.model_dump(mode="json", exclude_none=True)
    registration.check_model_data(aws.s3(), stored)
    model = StoredModel(
        name=request.ModelName,
        arn=model_arn(request.ModelName),
        creation_time=datetime.now(UTC),
        request=stored,
    )
    try:
        store.create_model(model)
    except NameTaken:
        raise RequestInvalid(f'Cannot create already existing model "{model.arn}".') from None
    return {"ModelArn": model.arn}


def describe_model(store: TransformStore, body: dict[str, Any]) -> dict[str, Any]:
    name = parse(ModelNamed, body).ModelName
    model = store.get_model(name)
    if model is None:
        raise not_found(name)
    answer = {key: value for key, value in model.request.items() if key != "Tags"}
    return answer | {
        "ModelName": model.name,
        "ModelArn": model.arn,
        "CreationTime": model.creation_time,
    }


def list_models(store: TransformStore, body: dict[str, Any]) -> dict[str, Any]:
    request = parse(ListModels, body)
    models = [
        model
        for model in store.list_models()
        if (request.NameContains is None or request.NameContains.lower() in model.name.lower())
        and within(model.creation_time, request.CreationTimeAfter, request.CreationTimeBefore)
    ]
    chosen, token = page(
        models,
        (lambda m: m.name) if request.SortBy == "Name" else (lambda m: m.creation_time),
        descending=request.SortOrder == "Descending",
        max_results=request.MaxResults,
        next_token=request.NextToken,
    )
    answer: dict[str, Any] = {
        "Models": [
            {"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.creation_time}
            for m in chosen
        ]
    }
    if token:
        answer["NextToken"] = token
    return answer


def delete_model(store: TransformStore, body: dict[str, Any]) -> dict[str, Any]:
    name = parse(ModelNamed, body).ModelName
    if not store.delete_model(name):
        raise not_found(name)
    return {}
