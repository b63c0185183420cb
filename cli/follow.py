"""``byom events``: a subscription to the done events that lives as long as the command.

A queue and a rule on byom's bus are made for this run and deleted when it
ends, by Ctrl-C and SIGTERM too, so following leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
from dataclasses import dataclass
from types import FrameType
from typing import Any

from cli.target import Target
from shared.schemas import DONE_EVENT_PATTERN


@dataclass(frozen=True)
class Subscription:
    name: str  # the queue's and the rule's
    bus: str
    queue_url: str
    rule_arn: str


def subscribe(target: Target, name: str | None = None) -> Subscription:
    """A queue, a rule on the bus and the rule's target; half-made ones are removed."""
    name = name or f"byom-follow-{secrets.token_hex(4)}"
    sqs, events = target.client("sqs"), target.client("events")
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    made = Subscription(name, target.event_bus, queue_url, rule_arn="")
    try:
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        rule_arn = events.put_rule(
            Name=name,
            EventBusName=target.event_bus,
            EventPattern=json.dumps(DONE_EVENT_PATTERN),
            Description="byom events --follow; removed when the command ends",
        )["RuleArn"]
        made = Subscription(name, target.event_bus, queue_url, rule_arn)
        # EventBridge may send to the queue only for this rule.
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        events.put_targets(
            Rule=name, EventBusName=target.event_bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
        )
    except BaseException:
        unsubscribe(target, made)
        raise
    return made


def unsubscribe(target: Target, subscription: Subscription) -> list[str]:
    """Delete the rule's target, the rule and the queue; what could not be deleted, said."""
    sqs, events = target.client("sqs"), target.client("events")
    problems: list[str] = []
    steps: list[tuple[Any, dict[str, Any]]] = [
        (events.remove_targets, {"Rule": subscription.name, "Ids": ["queue"]}),
        (events.delete_rule, {"Name": subscription.name}),
    ]
    bus = {"EventBusName": subscription.bus}
    steps = [(call, kwargs | bus) for call, kwargs in steps]
    steps.append((sqs.delete_queue, {"QueueUrl": subscription.queue_url}))
    for call, kwargs in steps:
        try:
            call(**kwargs)
        except Exception as exc:
            problems.append(str(exc))
    return problems


def receive(target: Target, subscription: Subscription, wait_seconds: int) -> list[dict[str, Any]]:
    """Done-event details waiting in the queue, deleted once read."""
    sqs = target.client("sqs")
    response = sqs.receive_message(
        QueueUrl=subscription.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
    )
    details = []
    for message in response.get("Messages", []):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            details.append(json.loads(message["Body"])["detail"])
        sqs.delete_message(QueueUrl=subscription.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return details


def interrupt_on_signals() -> None:
    """SIGTERM and SIGHUP stop the command as Ctrl-C does (KeyboardInterrupt); so does
    SIGINT, also where the shell started the command with it ignored (``cmd &``)."""

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def ignore_signals() -> None:
    """While the subscription is removed, another Ctrl-C must not cut that short."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
