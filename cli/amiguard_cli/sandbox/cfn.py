"""Read ``template.yaml``: CloudFormation short-form tags, and each function's event routes."""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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
    name: Any = None  # the event's RuleName as written (a literal or an intrinsic), None: CloudFormation names it
    bus: Any = None  # the event's EventBusName as written (organization mode: !If to the central bus), None: default

    @property
    def logical_id(self) -> str:
        """The logical id SAM gives the AWS::Events::Rule it generates (function id + event name)."""
        return self.rule.replace(".", "")


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
    return [
        Route(
            e.function, e.rule, e.properties["Pattern"], e.properties.get("RuleName"), e.properties.get("EventBusName")
        )
        for e in function_events(template, "EventBridgeRule")
    ]


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


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    from moto.events.models import EventPattern

    return EventPattern.load(pattern)


def pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether EventBridge would deliver ``event`` to a rule with ``pattern`` (moto's matcher decides)."""
    return bool(_compiled(json.dumps(pattern, sort_keys=True)).matches_event(event))


def functions_matching(routes: list[Route], event: dict[str, Any]) -> set[str]:
    """The functions whose rules match ``event``."""
    return {route.function for route in routes if pattern_matches(route.pattern, event)}


def _pattern_paths(pattern: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The field paths a pattern looks at (a dict value is a nested field; a list holds the leaf's matchers)."""
    paths: set[tuple[str, ...]] = set()
    for key, value in pattern.items():
        if key == "$or" and isinstance(value, list):
            for branch in value:
                paths |= _pattern_paths(branch, prefix) if isinstance(branch, dict) else set()
        elif isinstance(value, dict):
            paths |= _pattern_paths(value, (*prefix, key))
        else:
            paths.add((*prefix, key))
    return paths


def _project(event: Any, paths: set[tuple[str, ...]]) -> dict[str, Any]:
    """Only the fields at ``paths`` (absent ones stay absent, so ``exists`` matchers decide the same)."""
    projected: dict[str, Any] = {}
    for path in paths:
        node = event
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            target = projected
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = node
    return projected


class Router:
    """``functions_matching`` for many events: EventBridge decides from the fields its patterns name alone, so
    each event is cut to those fields and the answer for each distinct cut is computed once."""

    def __init__(self, routes: list[Route]) -> None:
        self._routes = routes
        self._paths = set().union(*(_pattern_paths(route.pattern) for route in routes)) if routes else set()
        self._answers: dict[str, frozenset[str]] = {}

    def functions(self, event: dict[str, Any]) -> frozenset[str]:
        projected = _project(event, self._paths)
        key = json.dumps(projected, sort_keys=True, default=str)
        if key not in self._answers:
            self._answers[key] = frozenset(functions_matching(self._routes, projected))
        return self._answers[key]


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


STACK_NAME = "amiguard"


def stack_id(account: str, region: str, name: str = STACK_NAME) -> str:
    """The ``AWS::StackId`` CloudFormation would give the sandbox's stack (stable per account and region)."""
    return f"arn:aws:cloudformation:{region}:{account}:stack/{name}/{uuid.uuid5(uuid.NAMESPACE_URL, account + region)}"


@dataclass(frozen=True)
class Stack:
    """What CloudFormation knows while it resolves a value: the parameters, the resources made, the pseudo params."""

    parameters: dict[str, str]
    resources: dict[str, str]  # logical id -> what !Ref returns (a table name, a topic ARN, ...)
    account: str
    region: str
    partition: str = "aws"
    attributes: Mapping[str, str] = field(default_factory=dict)  # "LogicalId.Attribute" -> what !GetAtt returns
    conditions: Mapping[str, bool] = field(default_factory=dict)  # the template's Conditions, for !If

    def resolve_optional(self, value: Any) -> str | None:
        """As :meth:`resolve`, where ``!If`` may choose ``!Ref AWS::NoValue`` (None: the property is left out)."""
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] == "AWS::NoValue":
            return None
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            if name not in self.conditions:
                raise UnresolvedValue(f"!If {name}: no such condition in the sandbox's stack")
            return self.resolve_optional(when_true if self.conditions[name] else when_false)
        return self.resolve(value)

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": stack_id(self.account, self.region),
        }
        for source in (pseudo, self.parameters, self.resources):
            if name in source:
                return source[name]
        raise UnresolvedValue(f"!Ref {name}: no such parameter, pseudo parameter or resource in the sandbox")

    def resolve(self, value: Any) -> str:
        """``value`` (a literal, ``!Ref``, ``!GetAtt``, ``!Sub``, ``!Join`` of those, ``!Select`` of a ``!Split``)
        as the string a function's environment would hold."""
        if isinstance(value, dict) and set(value) == {"Ref"}:
            return self.ref(str(value["Ref"]))
        if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
            attribute = ".".join(str(part) for part in value["Fn::GetAtt"])
            if attribute not in self.attributes:
                raise UnresolvedValue(f"!GetAtt {attribute}: not an attribute the sandbox knows")
            return self.attributes[attribute]
        if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}!]+)\}", lambda match: self.ref(match.group(1)), value["Fn::Sub"])
        if isinstance(value, dict) and set(value) == {"Fn::Join"}:
            separator, items = value["Fn::Join"]
            return str(separator).join(self.resolve(item) for item in items)
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            if (chosen := self.resolve_optional(value)) is None:
                raise UnresolvedValue(f"{value!r} chose AWS::NoValue where a value is needed")
            return chosen
        if isinstance(value, dict) and set(value) == {"Fn::Select"}:
            index, listed = value["Fn::Select"]
            if not (isinstance(listed, dict) and set(listed) == {"Fn::Split"}):
                raise UnresolvedValue(f"cannot resolve {value!r} in the sandbox (only !Select of a !Split)")
            separator, text = listed["Fn::Split"]
            return self.resolve(text).split(str(separator))[int(index)]
        if isinstance(value, dict | list):
            raise UnresolvedValue(f"cannot resolve {value!r} in the sandbox")
        return str(value).lower() if isinstance(value, bool) else str(value)


STACK_NAME = "amiguard"  # the name the sandbox's stack is deployed under


def get_atts(node: Any) -> set[str]:
    """Every ``!GetAtt Resource.Attribute`` under ``node`` (a template or part of one)."""
    if isinstance(node, dict):
        if set(node) == {"Fn::GetAtt"}:
            return {".".join(str(part) for part in node["Fn::GetAtt"])}
        return set().union(*(get_atts(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(get_atts(value) for value in node))
    return set()


def placeholder_stack(template: dict[str, Any], parameters: Mapping[str, str]) -> Stack:
    """A stack whose resources and attributes resolve to strings naming them (``<resource LedgerTable>``): what a
    value is bound to, for tests that compare environments rather than run them."""
    return Stack(
        parameter_values(template, parameters),
        {logical_id: f"<resource {logical_id}>" for logical_id in template["Resources"]},
        "123456789012",
        "us-east-1",
        attributes={attribute: f"<attribute {attribute}>" for attribute in get_atts(template["Resources"])},
    )


def role_arns(template: dict[str, Any], account: str, stack_name: str = STACK_NAME) -> dict[str, str]:
    """Each ``AWS::IAM::Role``'s ARN by logical id, named as CloudFormation names a role with no ``RoleName``:
    ``<stack>-<logical id>-<suffix>`` (at most 64 characters) under the role's ``Path``."""
    arns = {}
    for logical_id, resource in resources_of_type(template, "AWS::IAM::Role").items():
        properties = resource.get("Properties") or {}
        path = str(properties.get("Path", "/"))
        name = properties.get("RoleName")
        if not isinstance(name, str):
            suffix = uuid.uuid5(uuid.NAMESPACE_URL, f"{account}/{stack_name}/{logical_id}").hex[:12].upper()
            name = f"{stack_name}-{logical_id}"[: 64 - len(suffix) - 1] + f"-{suffix}"
        arns[logical_id] = f"arn:aws:iam::{account}:role{path}{name}"
    return arns


def function_role(template: dict[str, Any], function: str) -> str:
    """The logical id of the role ``function`` runs as (its ``Role: !GetAtt <Role>.Arn``)."""
    role = serverless_functions(template)[function].get("Role")
    if not (isinstance(role, dict) and "Fn::GetAtt" in role):
        raise UnresolvedValue(f"{function}: Role must be !GetAtt <a role of this stack>.Arn")
    return str(role["Fn::GetAtt"][0])


def evaluate_conditions(template: dict[str, Any], stack: Stack) -> dict[str, bool]:
    """Every entry of the template's ``Conditions``, as CloudFormation evaluates it with ``stack``'s parameters."""
    declared = template.get("Conditions") or {}
    values: dict[str, bool] = {}

    def operand(value: Any) -> str:
        return stack.resolve(value)

    def holds(value: Any) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Condition":
                return condition(str(argument))
            if key == "Fn::Equals":
                return operand(argument[0]) == operand(argument[1])
            if key == "Fn::Not":
                return not holds(argument[0])
            if key == "Fn::And":
                return all(holds(item) for item in argument)
            if key == "Fn::Or":
                return any(holds(item) for item in argument)
        raise UnresolvedValue(f"condition {value!r}: the sandbox does not evaluate it")

    def condition(name: str) -> bool:
        if name not in values:
            values[name] = holds(declared[name])
        return values[name]

    for name in declared:
        condition(name)
    return values


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
