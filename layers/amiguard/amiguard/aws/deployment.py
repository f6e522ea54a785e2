"""Reads amiguard's own deployment back from AWS (EventBridge, Lambda, CloudTrail) for the sweeper's check.

Read-only calls, one region. A resource that does not exist is a fact (``exists=False``); any other error
(access denied, throttling after botocore's retries) means the resource could not be verified, never that
it is fine: it is reported in ``unverified``.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from amiguard.aws.errors import error_code
from amiguard.policy.coverage import DeploymentState, FunctionState, RuleState, TrailState, records_management_writes
from amiguard.policy.tampering import OwnResources

NOT_FOUND = frozenset({"ResourceNotFoundException", "TrailNotFoundException"})


class AwsDeployment:
    """:class:`~amiguard.services.ports.DeploymentPort` on the EventBridge, Lambda and CloudTrail APIs."""

    def __init__(self, *, events: Any, lambda_: Any, cloudtrail: Any) -> None:
        self._events = events
        self._lambda = lambda_
        self._cloudtrail = cloudtrail

    def read(self, own: OwnResources) -> DeploymentState:
        rules: dict[str, RuleState] = {}
        functions: dict[str, FunctionState] = {}
        trails: list[TrailState] = []
        unverified: dict[str, str] = {}
        for name in sorted(own.rules):
            try:
                rules[name] = self._rule(name)
            except (ClientError, BotoCoreError) as error:
                unverified[f"rule {name}"] = _describe(error)
        for name in sorted(own.functions):
            try:
                functions[name] = self._function(name)
            except (ClientError, BotoCoreError) as error:
                unverified[f"function {name}"] = _describe(error)
        try:
            listed = self._cloudtrail.describe_trails(includeShadowTrails=True).get("trailList", [])
        except (ClientError, BotoCoreError) as error:
            unverified["trail"] = _describe(error)
            listed = []
        for trail in listed:
            try:
                trails.append(self._trail(trail))
            except (ClientError, BotoCoreError) as error:
                # e.g. an organization trail whose status this account may not read: unverified, not stopped
                unverified[f"trail {trail.get('Name')}"] = _describe(error)
        return DeploymentState(rules=rules, functions=functions, trails=trails, unverified=unverified)

    def _rule(self, name: str) -> RuleState:
        # <bus>/<rule>: a rule of a custom bus (organization mode's central bus); a plain name: the default bus.
        bus, _, rule_name = name.rpartition("/")
        on_bus = {"EventBusName": bus} if bus else {}
        try:
            rule = self._events.describe_rule(Name=rule_name, **on_bus)
        except ClientError as error:
            if error_code(error) in NOT_FOUND:
                return RuleState(exists=False)
            raise
        targets = self._events.list_targets_by_rule(Rule=rule_name, **on_bus).get("Targets", [])
        return RuleState(exists=True, enabled=rule.get("State") == "ENABLED", targets=len(targets))

    def _function(self, name: str) -> FunctionState:
        try:
            configuration = self._lambda.get_function_configuration(FunctionName=name)
        except ClientError as error:
            if error_code(error) in NOT_FOUND:
                return FunctionState(exists=False)
            raise
        reserved = self._lambda.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
        return FunctionState(exists=True, state=configuration.get("State"), reserved_concurrency=reserved)

    def _trail(self, trail: dict[str, Any]) -> TrailState:
        # Shadow trails are listed too: a multi-region or organization trail created elsewhere covers this region.
        arn = trail["TrailARN"]
        status = self._cloudtrail.get_trail_status(Name=arn)
        selectors = self._cloudtrail.get_event_selectors(TrailName=arn)
        basic, advanced = selectors.get("EventSelectors") or [], selectors.get("AdvancedEventSelectors") or []
        # AWS answers a trail without custom selectors with its default one (all management events).
        custom = bool(basic or advanced or trail.get("HasCustomEventSelectors"))
        writes = records_management_writes(basic, advanced, custom=custom)
        return TrailState(trail["Name"], arn, bool(status.get("IsLogging")), writes)


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error_code(error)}: {error.response.get('Error', {}).get('Message', '')}".strip()
    return f"{type(error).__name__}: {error}"
