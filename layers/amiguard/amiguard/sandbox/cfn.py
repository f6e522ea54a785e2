"""Read ``template.yaml``: CloudFormation short-form tags, and each function's event routes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class CfnTag:
    """An intrinsic function kept as data (``!Ref X`` → ``{"Ref": "X"}``)."""


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
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
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=CfnLoader)
    return document


@dataclass(frozen=True)
class Route:
    """One EventBridge rule of one function, exactly as the template declares it."""

    function: str  # the folder under functions/, e.g. "public_guard"
    rule: str  # "<FunctionLogicalId>.<EventName>"
    pattern: dict[str, Any]


def function_name(code_uri: str) -> str:
    return Path(code_uri.rstrip("/")).name


def event_routes(template: dict[str, Any]) -> list[Route]:
    """Every ``EventBridgeRule`` event of every ``AWS::Serverless::Function``."""
    routes = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        name = function_name(str(properties.get("CodeUri", logical_id)))
        for event_name, event in (properties.get("Events") or {}).items():
            if event.get("Type") == "EventBridgeRule":
                pattern = event["Properties"]["Pattern"]
                routes.append(Route(name, f"{logical_id}.{event_name}", pattern))
    return routes


def functions_matching(routes: list[Route], event: dict[str, Any]) -> set[str]:
    """The functions whose rules match ``event``, decided by moto's EventBridge pattern matcher."""
    from moto.events.models import EventPattern

    return {route.function for route in routes if EventPattern.load(json.dumps(route.pattern)).matches_event(event)}
