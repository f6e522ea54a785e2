"""Read ``template.yaml``: CloudFormation short-form tags, and each function's event routes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class CfnTag:
    """An intrinsic function kept as data (``!Ref X`` → ``{"Ref": "X"}``)."""


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands ``!Ref``, ``!GetAtt``, ``!Sub`` and the other short forms."""


CfnLoader.add_multi_constructor("!", _construct)  # type: ignore[no-untyped-call]


def load_template(path: Path) -> dict[str, Any]:
    """The template at ``path`` as plain data, intrinsic functions in their long form."""
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=CfnLoader)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a template (top level is {type(document).__name__})")
    return document


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one type, by logical id."""
    return {
        logical_id: resource
        for logical_id, resource in (template.get("Resources") or {}).items()
        if resource.get("Type") == resource_type
    }


@dataclass(frozen=True)
class Route:
    """One EventBridge rule of one function, exactly as the template declares it."""

    function: str  # the folder under functions/, e.g. "public_guard"
    rule: str  # "<FunctionLogicalId>.<EventName>"
    pattern: dict[str, Any]


def function_name(code_uri: str) -> str:
    return Path(code_uri.rstrip("/")).name


@dataclass(frozen=True)
class FunctionEvent:
    """One entry of a function's ``Events``: which function (folder name), its rule name, its properties."""

    function: str
    rule: str  # "<FunctionLogicalId>.<EventName>"
    properties: dict[str, Any]


def function_events(template: dict[str, Any], event_type: str) -> Iterator[FunctionEvent]:
    """Every event of ``event_type`` (``EventBridgeRule``, ``SNS``, ``Schedule``) of every serverless function."""
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        name = function_name(str(properties.get("CodeUri", logical_id)))
        for event_name, event in (properties.get("Events") or {}).items():
            if event.get("Type") == event_type:
                yield FunctionEvent(name, f"{logical_id}.{event_name}", event.get("Properties") or {})


def event_routes(template: dict[str, Any]) -> list[Route]:
    """Every ``EventBridgeRule`` event of every ``AWS::Serverless::Function``."""
    return [Route(e.function, e.rule, e.properties["Pattern"]) for e in function_events(template, "EventBridgeRule")]


@dataclass(frozen=True)
class Subscription:
    """One ``SNS`` event of one function: the topic (by logical id) and the filter policy, as declared."""

    function: str
    name: str  # "<FunctionLogicalId>.<EventName>"
    topic: str  # logical id of the topic the event's Topic refers to
    filter_policy: dict[str, Any] | None = None


def sns_subscriptions(template: dict[str, Any]) -> list[Subscription]:
    """Every ``SNS`` event of every ``AWS::Serverless::Function`` whose ``Topic`` is a ``!Ref`` to this stack."""
    subscriptions = []
    for event in function_events(template, "SNS"):
        topic = event.properties.get("Topic")
        if not (isinstance(topic, dict) and isinstance(topic.get("Ref"), str)):
            raise ValueError(f"{event.rule}: Topic must be a !Ref to a topic of this stack")
        subscriptions.append(
            Subscription(event.function, event.rule, topic["Ref"], event.properties.get("FilterPolicy"))
        )
    return subscriptions


def _literal(value: Any) -> bool:
    """True when ``value`` holds no intrinsic function (the sandbox can pass it to moto as it is)."""
    if isinstance(value, dict):
        return not any(key == "Ref" or key.startswith("Fn::") for key in value) and all(
            _literal(item) for item in value.values()
        )
    if isinstance(value, list):
        return all(_literal(item) for item in value)
    return True


def table_definition(template: dict[str, Any], logical_id: str) -> dict[str, Any] | None:
    """``CreateTable`` arguments for a table of the template (keys, indexes, billing, SSE), or None."""
    resource = (template.get("Resources") or {}).get(logical_id)
    if not resource or resource.get("Type") != "AWS::DynamoDB::Table":
        return None
    properties = resource.get("Properties") or {}
    wanted = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode", "SSESpecification")
    arguments = {key: properties[key] for key in wanted if key in properties and _literal(properties[key])}
    if "SSESpecification" in arguments:  # CloudFormation says SSEEnabled where the API says Enabled
        sse = dict(arguments["SSESpecification"])
        sse["Enabled"] = sse.pop("SSEEnabled", False)
        arguments["SSESpecification"] = sse
    return arguments


def pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether EventBridge would deliver ``event`` to a rule with ``pattern`` (moto's matcher decides)."""
    from moto.events.models import EventPattern

    return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))  # type: ignore[arg-type]


def functions_matching(routes: list[Route], event: dict[str, Any]) -> set[str]:
    """The functions whose rules match ``event``."""
    return {route.function for route in routes if pattern_matches(route.pattern, event)}


def scheduled_functions(template: dict[str, Any]) -> list[str]:
    """Functions run by a ``Schedule`` event (the sandbox calls them with :meth:`Sandbox.invoke`)."""
    return sorted({event.function for event in function_events(template, "Schedule")})


LAYER_MOUNT = "/opt/python"  # where Lambda mounts the layer's python/ folder


def function_environment(template: dict[str, Any]) -> dict[str, str]:
    """The literal variables every function gets from the template's Globals (no intrinsic resolved)."""
    function = template.get("Globals", {}).get("Function", {})
    return {key: str(value) for key, value in function.get("Environment", {}).get("Variables", {}).items()}


class UnresolvedValue(ValueError):
    """A template value the sandbox cannot resolve the way CloudFormation would."""


@dataclass(frozen=True)
class Stack:
    """What CloudFormation knows while it resolves a value: the parameters, the resources made, the pseudo params."""

    parameters: dict[str, str]
    resources: dict[str, str]  # logical id -> what !Ref returns (a table name, a topic ARN, ...)
    account: str
    region: str
    partition: str = "aws"

    def ref(self, name: str) -> str:
        pseudo = {"AWS::AccountId": self.account, "AWS::Region": self.region, "AWS::Partition": self.partition}
        for source in (pseudo, self.parameters, self.resources):
            if name in source:
                return source[name]
        raise UnresolvedValue(f"!Ref {name}: no such parameter, pseudo parameter or resource in the sandbox")

    def resolve(self, value: Any) -> str:
        """``value`` (a literal, ``!Ref`` or ``!Sub``) as the string a function's environment would hold."""
        if isinstance(value, dict) and set(value) == {"Ref"}:
            return self.ref(str(value["Ref"]))
        if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}!]+)\}", lambda match: self.ref(match.group(1)), value["Fn::Sub"])
        if isinstance(value, dict | list):
            raise UnresolvedValue(f"cannot resolve {value!r} in the sandbox")
        return str(value).lower() if isinstance(value, bool) else str(value)


def parameter_values(template: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """Every template parameter's value: ``overrides`` (as ``--parameter-overrides``) over the defaults.

    An unknown name or a parameter with neither is an error, as ``sam deploy`` would make it.
    """
    declared = template.get("Parameters") or {}
    if unknown := sorted(set(overrides) - set(declared)):
        raise ValueError(f"not parameters of template.yaml: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, declaration in declared.items():
        if name in overrides:
            values[name] = str(overrides[name])
        elif "Default" in declaration:
            values[name] = str(declaration["Default"])
        else:
            raise ValueError(f"parameter {name} has no default: pass it")
    return values


def serverless_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every ``AWS::Serverless::Function`` by its folder name under functions/ (its ``Properties``)."""
    return {
        function_name(str(resource["Properties"].get("CodeUri", logical_id))): resource["Properties"]
        for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items()
    }


def deployed_environment(template: dict[str, Any], function: str, stack: Stack) -> dict[str, str]:
    """The environment ``function`` runs with as deployed: Globals, then its own ``Environment``, resolved."""
    own = serverless_functions(template)[function].get("Environment", {}).get("Variables", {})
    globals_ = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {key: stack.resolve(value) for key, value in (globals_ | own).items()}


def deployed_data_path(template: dict[str, Any], root: Path) -> str | None:
    """The template's ``AWS_DATA_PATH`` as it resolves in this checkout (the layer's source for /opt/python)."""
    value = function_environment(template).get("AWS_DATA_PATH")
    if value is None:
        return None
    return value.replace(LAYER_MOUNT, str(root / "layers" / "amiguard"), 1)


def function_timeout(template: dict[str, Any], function: str) -> int:
    """Seconds ``function`` may run per invocation: its own ``Timeout``, else the Globals' (Lambda's default 3)."""
    own = serverless_functions(template).get(function, {}).get("Timeout")
    default = template.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    return int(own if own is not None else default)
