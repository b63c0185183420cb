"""The template as CloudFormation would deploy it for given parameters.

Resolves the template's Conditions, drops the resources whose condition is false,
and replaces every ``Fn::If`` by the branch taken (``AWS::NoValue`` removes the
key or list item), so a test can read one endpoint mode's resources as plain
data. It also evaluates the template's Rules, as CloudFormation does before it
creates anything. Only the intrinsic functions the template uses in Conditions
and Rules are understood (Equals, Not, Or, And, Contains, Condition, Ref); any
other raises, so a new one cannot be silently misread.
"""

from __future__ import annotations

from typing import Any

from tests.unit.test_template import load_template

_NO_VALUE = object()


class UnresolvableError(ValueError):
    """A condition or rule uses something this resolver does not evaluate."""


def parameter_values(overrides: dict[str, str]) -> dict[str, Any]:
    """Every parameter's value: its default unless overridden."""
    parameters = load_template()["Parameters"]
    unknown = set(overrides) - set(parameters)
    if unknown:
        raise UnresolvableError(f"no such parameters: {sorted(unknown)}")
    values = {name: spec.get("Default") for name, spec in parameters.items()}
    values.update(overrides)
    return values


def _value(node: Any, parameters: dict[str, Any], conditions: dict[str, bool]) -> Any:
    """A condition or rule expression evaluated to a plain value."""
    if isinstance(node, (str, int, float, bool)):
        return node
    if isinstance(node, list):
        return [_value(item, parameters, conditions) for item in node]
    if not isinstance(node, dict) or len(node) != 1:
        raise UnresolvableError(f"not an expression: {node!r}")
    ((function, argument),) = node.items()
    if function == "Ref":
        if argument not in parameters:
            raise UnresolvableError(f"Ref to {argument!r}, not a parameter")
        return parameters[argument]
    if function == "Condition":
        return conditions[argument]
    if function == "Fn::Equals":
        left, right = (_value(item, parameters, conditions) for item in argument)
        return str(left) == str(right)
    if function == "Fn::Not":
        (inner,) = argument
        return not _value(inner, parameters, conditions)
    if function == "Fn::Or":
        return any(_value(item, parameters, conditions) for item in argument)
    if function == "Fn::And":
        return all(_value(item, parameters, conditions) for item in argument)
    if function == "Fn::Contains":
        listed, item = argument
        found = _value(item, parameters, conditions)
        return str(found) in {str(entry) for entry in _value(listed, parameters, conditions)}
    raise UnresolvableError(f"{function} is not evaluated here")


def conditions(overrides: dict[str, str]) -> dict[str, bool]:
    parameters = parameter_values(overrides)
    resolved: dict[str, bool] = {}
    pending = dict(load_template()["Conditions"])
    while pending:
        progressed = False
        for name, expression in list(pending.items()):
            try:
                resolved[name] = bool(_value(expression, parameters, resolved))
            except KeyError:
                continue  # refers to a condition not resolved yet
            del pending[name]
            progressed = True
        if not progressed:
            raise UnresolvableError(f"conditions refer in a circle: {sorted(pending)}")
    return resolved


def refusals(overrides: dict[str, str]) -> list[str]:
    """The AssertDescription of every rule assertion these parameters break."""
    parameters = parameter_values(overrides)
    held = conditions(overrides)
    broken: list[str] = []
    for rule in load_template().get("Rules", {}).values():
        condition = rule.get("RuleCondition")
        if condition is not None and not _value(condition, parameters, held):
            continue
        for assertion in rule["Assertions"]:
            if not _value(assertion["Assert"], parameters, held):
                broken.append(" ".join(assertion["AssertDescription"].split()))
    return broken


def _taken(node: Any, held: dict[str, bool]) -> Any:
    """``node`` with every Fn::If resolved; _NO_VALUE where AWS::NoValue was taken."""
    if isinstance(node, list):
        items = [_taken(item, held) for item in node]
        return [item for item in items if item is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] == "AWS::NoValue":
        return _NO_VALUE
    if set(node) == {"Fn::If"}:
        name, when_true, when_false = node["Fn::If"]
        return _taken(when_true if held[name] else when_false, held)
    taken = {key: _taken(value, held) for key, value in node.items()}
    return {key: value for key, value in taken.items() if value is not _NO_VALUE}


def deployed_resources(**overrides: str) -> dict[str, dict[str, Any]]:
    """The resources CloudFormation creates for these parameters, Fn::If resolved."""
    held = conditions(overrides)
    return {
        name: _taken(item, held)
        for name, item in load_template()["Resources"].items()
        if held.get(item.get("Condition", ""), True)
    }
