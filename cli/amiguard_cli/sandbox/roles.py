"""Each function's role as template.yaml deploys it, and IAM's decision on each call the function makes.

A function's permissions are its ``Role: !GetAtt XRole.Arn``'s inline ``Policies``, the template's managed
policies in its ``ManagedPolicyArns``, and every ``AWS::IAM::RolePolicy`` / ``AWS::IAM::Policy`` /
``AWS::IAM::ManagedPolicy`` attached to it, each only when its ``Condition`` holds for the stack's
parameters, exactly as CloudFormation would create them. IAM's evaluation, as the sandbox applies it: an
explicit ``Deny`` wins, then any ``Allow`` whose action, resource and conditions all match, else the
implicit deny. Actions match case-insensitively, resources case-sensitively, ``*`` and ``?`` as IAM's
wildcards. A condition key the request does not carry fails the condition (``...IfExists`` and the negated
operators aside), as in IAM. What the sandbox cannot evaluate faithfully (an AWS managed policy, a condition
operator it does not know) is an error, never a silent allow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from amiguard_cli.sandbox.cfn import (
    Stack,
    UnresolvedValue,
    evaluate_conditions,
    resources_of_type,
    serverless_functions,
)
from amiguard_cli.sandbox.iam import Authorization

NO_VALUE = object()  # what ``!Ref AWS::NoValue`` resolves to: the property is dropped
# A resource the sandbox does not create (a queue, a log group): its ARN can match no call the code makes.
UNMODELLED = "arn:sandbox:unmodelled:::{}"
ResourceTags = Callable[[str], Mapping[str, str]]


class UnsupportedPolicy(ValueError):
    """A policy the sandbox cannot evaluate as IAM would: fix the sandbox, never allow by default."""


# --- resolving the template's policy documents ----------------------------------------------------------


@dataclass(frozen=True)
class Resolver:
    """Resolves intrinsic functions in policy documents as CloudFormation would in ``stack``."""

    template: dict[str, Any]
    stack: Stack
    attributes: Mapping[str, str]  # "LogicalId.Attribute" -> value, for the resources the sandbox made
    conditions: Mapping[str, bool]

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        try:
            return self.stack.ref(name)
        except UnresolvedValue:
            if name in (self.template.get("Resources") or {}):
                return UNMODELLED.format(name)
            raise

    def _attribute(self, logical_id: str, attribute: str) -> str:
        key = f"{logical_id}.{attribute}"
        if key in self.attributes:
            return self.attributes[key]
        if logical_id in (self.template.get("Resources") or {}):
            return UNMODELLED.format(key)
        raise UnresolvedValue(f"!GetAtt {key}: no such resource")

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                return self._attribute(*name.split(".", 1))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        """``value`` with every ``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``
        and ``Fn::If`` resolved."""
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(str(argument))
            if key == "Fn::GetAtt":
                parts = argument if isinstance(argument, list) else str(argument).split(".", 1)
                return self._attribute(str(parts[0]), str(parts[1]))
            if key == "Fn::Sub":
                if isinstance(argument, str):
                    return self._sub(argument, {})
                return self._sub(str(argument[0]), argument[1])
            if key == "Fn::Join":
                return str(argument[0]).join(str(item) for item in self.resolve(argument[1]))
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.conditions[name] else when_false)
            if key == "Fn::Select":
                return self.resolve(argument[1])[int(self.resolve(argument[0]))]
            if key == "Fn::Split":
                return str(self.resolve(argument[1])).split(str(argument[0]))
            if key.startswith("Fn::"):
                raise UnsupportedPolicy(f"{key} in a policy: the sandbox does not resolve it")
        return {key: item for key, item in ((k, self.resolve(v)) for k, v in value.items()) if item is not NO_VALUE}


# --- statements and their evaluation --------------------------------------------------------------------


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(str(item) for item in value) if isinstance(value, list) else (str(value),)


@cache
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's matching of ``*`` (any run of characters) and ``?`` (one character)."""
    return _wildcard(pattern, ignore_case).match(value) is not None


STRING_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda value, expected: value == expected,
    "StringEqualsIgnoreCase": lambda value, expected: value.lower() == expected.lower(),
    "StringLike": lambda value, pattern: wildcard_match(pattern, value),
    "ArnEquals": lambda value, expected: value == expected,
    "ArnLike": lambda value, pattern: wildcard_match(pattern, value),
    "Bool": lambda value, expected: value.lower() == expected.lower(),
}
NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
}


def _condition_holds(operator: str, key: str, expected: tuple[str, ...], values: tuple[str, ...] | None) -> bool:
    qualifier = ""
    if ":" in operator and operator.split(":", 1)[0] in {"ForAnyValue", "ForAllValues"}:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    if operator == "Null":
        return (values is None) == (expected[0].lower() == "true")
    negated = operator in NEGATED
    compare = STRING_OPERATORS.get(NEGATED.get(operator, operator))
    if compare is None:
        raise UnsupportedPolicy(f"condition operator {operator} on {key}: the sandbox does not evaluate it")
    if values is None:
        return if_exists or negated or qualifier == "ForAllValues"
    if qualifier == "ForAllValues":
        matched = all(any(compare(value, item) for item in expected) for value in values)
    else:  # ForAnyValue, and single-valued keys
        matched = any(compare(value, item) for value in values for item in expected)
    return not matched if negated else matched


@dataclass(frozen=True)
class Statement:
    """One statement of one policy, resolved."""

    policy: str
    sid: str
    effect: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_resources: tuple[str, ...]
    conditions: Mapping[str, Mapping[str, tuple[str, ...]]]

    @classmethod
    def parse(cls, policy: str, raw: Mapping[str, Any]) -> Statement:
        if "Principal" in raw or "NotPrincipal" in raw:
            raise UnsupportedPolicy(f"{policy}: an identity policy names no Principal")
        conditions = {
            operator: {key: _as_tuple(values) for key, values in keys.items()}
            for operator, keys in (raw.get("Condition") or {}).items()
        }
        return cls(
            policy=policy,
            sid=str(raw.get("Sid", "")),
            effect=str(raw["Effect"]),
            actions=_as_tuple(raw.get("Action")),
            not_actions=_as_tuple(raw.get("NotAction")),
            resources=_as_tuple(raw.get("Resource")),
            not_resources=_as_tuple(raw.get("NotResource")),
            conditions=conditions,
        )

    def applies(self, request: Authorization, resource_tags: ResourceTags | None = None) -> bool:
        """Whether this statement's action, resource and conditions all match ``request``."""
        if self.actions and not any(wildcard_match(a, request.action, ignore_case=True) for a in self.actions):
            return False
        if self.not_actions and any(wildcard_match(a, request.action, ignore_case=True) for a in self.not_actions):
            return False
        if self.resources and not any(wildcard_match(r, request.resource) for r in self.resources):
            return False
        if self.not_resources and any(wildcard_match(r, request.resource) for r in self.not_resources):
            return False
        for operator, keys in self.conditions.items():
            for key, expected in keys.items():
                if not _condition_holds(operator, key, expected, _context_value(request, key, resource_tags)):
                    return False
        return True


def _context_value(request: Authorization, key: str, resource_tags: ResourceTags | None) -> tuple[str, ...] | None:
    if key in request.context:
        return request.context[key]
    for prefix in ("aws:ResourceTag/", "ec2:ResourceTag/"):
        if key.startswith(prefix) and resource_tags is not None and request.resource != "*":
            tags = resource_tags(request.resource)
            tag = key.removeprefix(prefix)
            return (tags[tag],) if tag in tags else None
    return None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    request: Authorization
    statement: Statement | None = None  # the Allow that allowed it, or the Deny that denied it

    @property
    def explanation(self) -> str:
        if self.allowed:
            return "allowed"
        if self.statement is not None:
            return f"with an explicit deny in an identity-based policy ({self.statement.policy})"
        return f"because no identity-based policy allows the {self.request.action} action"


@dataclass(frozen=True)
class RolePermissions:
    """What one role of the template may do, as deployed with the stack's parameters."""

    role: str
    statements: tuple[Statement, ...]

    def decide(self, request: Authorization, resource_tags: ResourceTags | None = None) -> Decision:
        allowed: Statement | None = None
        for statement in self.statements:
            if statement.applies(request, resource_tags):
                if statement.effect == "Deny":
                    return Decision(False, request, statement)
                allowed = allowed or statement
        return Decision(allowed is not None, request, allowed)

    def denied(self, requests: Sequence[Authorization], resource_tags: ResourceTags | None = None) -> Decision | None:
        """The first of ``requests`` IAM would refuse, or None when the role allows them all."""
        for request in requests:
            decision = self.decide(request, resource_tags)
            if not decision.allowed:
                return decision
        return None


# --- a function's role in the template ------------------------------------------------------------------


def _present(resource: Mapping[str, Any], conditions: Mapping[str, bool]) -> bool:
    name = resource.get("Condition")
    return name is None or conditions[str(name)]


def _is_ref_to(value: Any, logical_id: str) -> bool:
    return isinstance(value, dict) and value.get("Ref") == logical_id


def _document_statements(policy: str, document: Any, resolver: Resolver) -> list[Statement]:
    resolved = resolver.resolve(document)
    raw = resolved.get("Statement", [])
    return [Statement.parse(policy, statement) for statement in (raw if isinstance(raw, list) else [raw])]


def role_of(template: dict[str, Any], function: str) -> str:
    """The logical id of the AWS::IAM::Role a function runs as (``Role: !GetAtt XRole.Arn``)."""
    role = serverless_functions(template)[function].get("Role")
    if not (isinstance(role, dict) and isinstance(role.get("Fn::GetAtt"), list) and role["Fn::GetAtt"][1] == "Arn"):
        raise UnsupportedPolicy(f"{function}: Role must be !GetAtt <a role of this stack>.Arn, not {role!r}")
    logical_id = str(role["Fn::GetAtt"][0])
    if (template.get("Resources") or {}).get(logical_id, {}).get("Type") != "AWS::IAM::Role":
        raise UnsupportedPolicy(f"{function}: {logical_id} is not an AWS::IAM::Role of this stack")
    return logical_id


def role_permissions(
    template: dict[str, Any], role_id: str, stack: Stack, attributes: Mapping[str, str] | None = None
) -> RolePermissions:
    """Every statement the role holds once CloudFormation has deployed the template with ``stack``'s parameters."""
    conditions = evaluate_conditions(template, stack)
    resolver = Resolver(template, stack, attributes or {}, conditions)
    resources = template.get("Resources") or {}
    role = resources[role_id]
    if not _present(role, conditions):
        raise UnsupportedPolicy(f"{role_id} is not created with these parameters")
    properties = resolver.resolve(role.get("Properties") or {})
    if "PermissionsBoundary" in properties:
        raise UnsupportedPolicy(f"{role_id}: the sandbox does not evaluate permissions boundaries")
    statements: list[Statement] = []
    for policy in properties.get("Policies", []):
        statements += _document_statements(f"{role_id}/{policy['PolicyName']}", policy["PolicyDocument"], resolver)
    managed = resources_of_type(template, "AWS::IAM::ManagedPolicy")
    for arn in (role.get("Properties") or {}).get("ManagedPolicyArns", []):
        target = arn.get("Ref") if isinstance(arn, dict) else None
        if target not in managed:
            raise UnsupportedPolicy(f"{role_id}: managed policy {arn!r} is not one of this template's")
        if _present(managed[target], conditions):
            document = managed[target]["Properties"]["PolicyDocument"]
            statements += _document_statements(target, document, resolver)
    for policy_id, policy in resources.items():
        kind = policy.get("Type")
        attached = policy.get("Properties") or {}
        if kind == "AWS::IAM::RolePolicy":
            targets = [attached.get("RoleName")]
        elif kind in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            targets = list(attached.get("Roles") or [])
        else:
            continue
        if policy_id in {
            arn.get("Ref")
            for arn in (role.get("Properties") or {}).get("ManagedPolicyArns", [])
            if isinstance(arn, dict)
        }:
            continue  # counted above
        if any(_is_ref_to(target, role_id) for target in targets) and _present(policy, conditions):
            statements += _document_statements(policy_id, attached["PolicyDocument"], resolver)
    return RolePermissions(role_id, tuple(statements))
