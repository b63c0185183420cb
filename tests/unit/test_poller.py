from __future__ import annotations

from pathlib import Path

from aws_lambda_powertools.utilities.data_classes import SQSEvent

from infra.local.lambda_bootstrap import LambdaContext
from infra.local.poller import to_lambda_record
from shared.lambda_sqs import sqs_handler

MESSAGE = {
    "MessageId": "m-1",
    "ReceiptHandle": "r-1",
    "MD5OfBody": "x",
    "Body": '{"hello": "world"}',
    "Attributes": {
        "ApproximateReceiveCount": "2",
        "SentTimestamp": "1764000000000",
        "AWSTraceHeader": (
            "Root=1-67891233-abcdef012345678912345678;Parent=463ac35c9f6413ad;Sampled=1"
        ),
    },
    "MessageAttributes": {"k": {"StringValue": "v", "DataType": "String"}},
}


def test_records_have_lambdas_shape():
    record = to_lambda_record(MESSAGE, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    parsed = next(SQSEvent({"Records": [record]}).records)
    assert parsed.message_id == "m-1"
    assert parsed.receipt_handle == "r-1"
    assert parsed.attributes.approximate_receive_count == "2"
    assert parsed.attributes.aws_trace_header == MESSAGE["Attributes"]["AWSTraceHeader"]
    assert parsed.message_attributes["k"].string_value == "v"
    assert parsed.event_source_arn.endswith(":q")


def test_partial_batch_failures_name_only_the_failed_records():
    seen: list[str] = []

    def process(body: str) -> None:
        seen.append(body)
        if "bad" in body:
            raise ValueError("bad record")

    handler = sqs_handler("test", process)
    records = [
        to_lambda_record({**MESSAGE, "MessageId": f"m-{i}", "Body": body}, "arn:q", "us-east-1")
        for i, body in enumerate(["ok", "bad", "ok too"])
    ]
    result = handler({"Records": records}, LambdaContext("test", timeout_seconds=30))
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert seen == ["ok", "bad", "ok too"]


def test_context_counts_down():
    context = LambdaContext("f", timeout_seconds=30)
    assert 29_000 < context.get_remaining_time_in_millis() <= 30_000


def test_local_functions_run_with_the_templates_timeouts_and_batch_sizes():
    from infra.local.stack_config import DEAD_LETTERS, HANDLERS
    from tests.unit.test_template import load_template

    template = load_template()["Resources"]
    handlers = {
        r["Properties"]["Handler"]
        .replace(".handler.handler", ".handler:handler")
        .replace(".dead_letter_handler.handler", ".dead_letter_handler:handler"): r["Properties"]
        for r in template.values()
        if r["Type"] == "AWS::Lambda::Function" and "Handler" in r["Properties"]
    }
    mappings = [
        r["Properties"] for r in template.values() if r["Type"].endswith("EventSourceMapping")
    ]
    for function in [*HANDLERS.values(), DEAD_LETTERS]:
        properties = handlers[function.handler]
        assert function.timeout_seconds == properties["Timeout"], function
        name = next(n for n, r in template.items() if r.get("Properties") is properties)
        sizes = {m["BatchSize"] for m in mappings if m["FunctionName"] == {"Ref": name}}
        assert sizes == {function.batch_size}, function


def test_local_queues_outlast_their_functions_as_the_templates_do():
    # Lambda refuses a mapping whose queue's visibility is shorter than the
    # function's timeout: a message would come back while it is still running.
    from infra.local.resources import QUEUES
    from infra.local.stack_config import HANDLERS, StackConfig
    from tests.unit.test_template import load_template

    template = load_template()["Resources"]
    local = StackConfig(model_dir=Path()).visibility_timeout
    for name in QUEUES:
        function = HANDLERS[name]
        queue = template[f"{name.title()}Queue"]["Properties"]
        assert local >= function.timeout_seconds, name
        assert queue["VisibilityTimeout"] >= function.timeout_seconds, name
        assert local >= queue["VisibilityTimeout"], name


def test_local_dead_letter_queues_outlast_their_function_as_the_templates_do():
    import inspect

    from infra.local.resources import QUEUES, bootstrap
    from infra.local.stack_config import DEAD_LETTERS
    from tests.unit.test_template import load_template

    template = load_template()["Resources"]
    local = inspect.signature(bootstrap).parameters["dead_letter_visibility_timeout"]
    for name in QUEUES:
        queue = template[f"{name.title()}DeadLetterQueue"]["Properties"]
        assert queue["VisibilityTimeout"] >= DEAD_LETTERS.timeout_seconds, name
        assert local.default == queue["VisibilityTimeout"], name
