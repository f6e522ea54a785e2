"""Tampering: a CloudTrail call that changes one of amiguard's own rules, functions, roles or its trail.

Triggered by tamper_guard's rule (sources aws.events, aws.lambda, aws.iam, aws.cloudtrail; coarse by event
name). A call is tampering when it names, in its request parameters, a resource of the stack itself: the
names CloudFormation gave them reach the function through its environment (never a name pattern, which
anyone may copy). A call CloudFormation made (``userIdentity.invokedBy`` is set by CloudTrail and cannot be
sent by a caller) is a deploy: reported as info, not critical; what it left behind is verified by the sweeper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from amiguard.models.events import CloudTrailRecord
from amiguard.models.settings import Settings

CLOUDFORMATION = "cloudformation.amazonaws.com"
DEFAULT_BUS = "default"

# Lambda records most API names with the version of the API they belong to (UpdateFunctionConfiguration20150331v2).
_LAMBDA_VERSION_SUFFIX = re.compile(r"\d{8}(?:v\d+)?$")
# Name, ARN or partial ARN (123456789012:function:name), optionally with a version or alias qualifier.
_FUNCTION_REFERENCE = re.compile(
    r"^(?:arn:[a-z-]+:lambda:[a-z0-9-]+:)?(?:\d{12}:)?(?:function:)?([A-Za-z0-9_-]+)(?::.+)?$"
)


class ResourceKind(StrEnum):
    RULE = "rule"
    FUNCTION = "function"
    ROLE = "role"
    TRAIL = "trail"
    BUS = "event-bus"  # organization mode's central bus: its policy admits the organization's forwarders


# (eventSource, API name) → what it changes and which request parameter names it.
WATCHED_CALLS: dict[tuple[str, str], tuple[ResourceKind, str]] = {
    ("events.amazonaws.com", "DisableRule"): (ResourceKind.RULE, "name"),
    ("events.amazonaws.com", "DeleteRule"): (ResourceKind.RULE, "name"),
    ("events.amazonaws.com", "PutRule"): (ResourceKind.RULE, "name"),
    ("events.amazonaws.com", "RemoveTargets"): (ResourceKind.RULE, "rule"),
    ("events.amazonaws.com", "PutTargets"): (ResourceKind.RULE, "rule"),
    ("events.amazonaws.com", "PutPermission"): (ResourceKind.BUS, "eventBusName"),
    ("events.amazonaws.com", "RemovePermission"): (ResourceKind.BUS, "eventBusName"),
    ("events.amazonaws.com", "DeleteEventBus"): (ResourceKind.BUS, "name"),
    ("events.amazonaws.com", "UpdateEventBus"): (ResourceKind.BUS, "name"),
    ("lambda.amazonaws.com", "DeleteFunction"): (ResourceKind.FUNCTION, "functionName"),
    ("lambda.amazonaws.com", "PutFunctionConcurrency"): (ResourceKind.FUNCTION, "functionName"),
    ("lambda.amazonaws.com", "DeleteFunctionConcurrency"): (ResourceKind.FUNCTION, "functionName"),
    ("lambda.amazonaws.com", "UpdateFunctionConfiguration"): (ResourceKind.FUNCTION, "functionName"),
    ("lambda.amazonaws.com", "UpdateFunctionCode"): (ResourceKind.FUNCTION, "functionName"),
    ("lambda.amazonaws.com", "RemovePermission"): (ResourceKind.FUNCTION, "functionName"),
    ("lambda.amazonaws.com", "PutFunctionEventInvokeConfig"): (ResourceKind.FUNCTION, "functionName"),
    ("lambda.amazonaws.com", "UpdateFunctionEventInvokeConfig"): (ResourceKind.FUNCTION, "functionName"),
    ("lambda.amazonaws.com", "DeleteFunctionEventInvokeConfig"): (ResourceKind.FUNCTION, "functionName"),
    ("iam.amazonaws.com", "PutRolePolicy"): (ResourceKind.ROLE, "roleName"),
    ("iam.amazonaws.com", "DeleteRolePolicy"): (ResourceKind.ROLE, "roleName"),
    ("iam.amazonaws.com", "AttachRolePolicy"): (ResourceKind.ROLE, "roleName"),
    ("iam.amazonaws.com", "DetachRolePolicy"): (ResourceKind.ROLE, "roleName"),
    ("iam.amazonaws.com", "UpdateAssumeRolePolicy"): (ResourceKind.ROLE, "roleName"),
    ("iam.amazonaws.com", "PutRolePermissionsBoundary"): (ResourceKind.ROLE, "roleName"),
    ("iam.amazonaws.com", "DeleteRolePermissionsBoundary"): (ResourceKind.ROLE, "roleName"),
    ("iam.amazonaws.com", "DeleteRole"): (ResourceKind.ROLE, "roleName"),
    ("cloudtrail.amazonaws.com", "StopLogging"): (ResourceKind.TRAIL, "name"),
    ("cloudtrail.amazonaws.com", "DeleteTrail"): (ResourceKind.TRAIL, "name"),
    ("cloudtrail.amazonaws.com", "UpdateTrail"): (ResourceKind.TRAIL, "name"),
    ("cloudtrail.amazonaws.com", "PutEventSelectors"): (ResourceKind.TRAIL, "trailName"),
}


@dataclass(frozen=True)
class OwnResources:
    """The stack's own resources by name. ``trails`` empty: amiguard cannot tell which trail feeds it, so any."""

    functions: frozenset[str]
    rules: frozenset[str]
    roles: frozenset[str]
    trails: frozenset[str] = frozenset()

    @property
    def buses(self) -> frozenset[str]:
        """The custom buses amiguard's own rules are on (``<bus>/<rule>``): organization mode's central bus."""
        return frozenset(rule.rsplit("/", 1)[0] for rule in self.rules if "/" in rule)

    def owns(self, kind: ResourceKind, name: str) -> bool:
        names = {
            ResourceKind.RULE: self.rules,
            ResourceKind.FUNCTION: self.functions,
            ResourceKind.ROLE: self.roles,
            ResourceKind.TRAIL: self.trails,
            ResourceKind.BUS: self.buses,
        }[kind]
        return name in names or (kind is ResourceKind.TRAIL and not names)

    @classmethod
    def of(cls, settings: Settings) -> OwnResources:
        """The stack's own resources, as the template passes them to the function."""
        return cls(
            functions=frozenset(settings.own_functions),
            rules=frozenset(settings.own_rules),
            roles=frozenset(settings.own_roles),
            trails=frozenset({settings.trail.rsplit(":trail/", 1)[-1]} if settings.trail else ()),
        )


@dataclass(frozen=True)
class Tampering:
    """One call that changed one of amiguard's own resources."""

    kind: ResourceKind
    resource: str
    api: str  # the API name without Lambda's version suffix
    deploy: bool  # made by CloudFormation (a stack update or deletion), not by a person or a script


def api_name(event_source: str, event_name: str) -> str:
    """The public API name of a CloudTrail ``eventName`` (Lambda's carry a version suffix)."""
    if event_source == "lambda.amazonaws.com":
        return _LAMBDA_VERSION_SUFFIX.sub("", event_name)
    return event_name


def referenced_name(kind: ResourceKind, reference: str) -> str:
    """The plain name a request parameter refers to (functions and trails may be given by ARN)."""
    if kind is ResourceKind.FUNCTION and (match := _FUNCTION_REFERENCE.match(reference)):
        return match.group(1)
    if kind is ResourceKind.TRAIL and reference.startswith("arn:") and ":trail/" in reference:
        return reference.rsplit(":trail/", 1)[1]
    if kind is ResourceKind.BUS:
        return reference.rsplit(":event-bus/", 1)[-1]
    return reference


def is_watched(record: CloudTrailRecord) -> bool:
    """Whether the call is one that can switch amiguard off or change what it may do."""
    return (record.event_source, api_name(record.event_source, record.event_name)) in WATCHED_CALLS


def tampering(record: CloudTrailRecord, own: OwnResources) -> Tampering | None:
    """The change ``record`` made to amiguard's own resources, or None when it names none of them."""
    api = api_name(record.event_source, record.event_name)
    watched = WATCHED_CALLS.get((record.event_source, api))
    if watched is None:
        return None
    kind, parameter = watched
    params: dict[str, Any] = record.params
    reference = params.get(parameter)
    if not isinstance(reference, str) or not reference:
        return None
    name = referenced_name(kind, reference)
    if kind is ResourceKind.RULE:
        # A bus is named or given by ARN; a rule of a custom bus (organization mode's central bus) is <bus>/<rule>.
        bus = str(params.get("eventBusName") or DEFAULT_BUS).rsplit(":event-bus/", 1)[-1]
        if bus != DEFAULT_BUS:
            name = f"{bus}/{name}"
    if not own.owns(kind, name):
        return None
    invoked_by = record.user_identity.invoked_by if record.user_identity else None
    return Tampering(kind=kind, resource=name, api=api, deploy=invoked_by == CLOUDFORMATION)
