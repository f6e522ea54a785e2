"""Coverage: is amiguard still deployed as it was, able to hear and act? Run by the sweeper on its schedule.

What tamper_guard hears within seconds, this finds afterwards, whoever did it and whether or not the guard
was itself switched off at the time: every rule of the stack enabled with a target, every function there and
not throttled to zero (reserved concurrency 0), and a trail logging this region's write management events
(EventBridge receives "AWS API Call via CloudTrail" events only then).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amiguard.policy.tampering import OwnResources, ResourceKind

ACTIVE_FUNCTION_STATES = frozenset({"Active", "Pending"})  # Pending: a deploy in progress, it will run


@dataclass(frozen=True)
class RuleState:
    exists: bool
    enabled: bool = False
    targets: int = 0


@dataclass(frozen=True)
class FunctionState:
    exists: bool
    state: str | None = None
    reserved_concurrency: int | None = None  # None: no reservation (the account's unreserved pool)


@dataclass(frozen=True)
class TrailState:
    name: str
    arn: str
    logging: bool
    records_management_writes: bool


@dataclass(frozen=True)
class DeploymentState:
    """What AWS says about the stack's resources in the sweeper's region."""

    rules: Mapping[str, RuleState]
    functions: Mapping[str, FunctionState]
    trails: Sequence[TrailState]
    unverified: Mapping[str, str] = field(default_factory=dict)  # "kind name" -> the error that stopped the check


@dataclass(frozen=True)
class Gap:
    """One way the deployment is not as deployed; ``blind`` when amiguard no longer hears or acts."""

    kind: ResourceKind
    resource: str
    problem: str
    blind: bool = True

    def to_evidence(self) -> dict[str, Any]:
        return {"resource_type": self.kind.value, "resource": self.resource, "problem": self.problem}


def records_management_writes(
    event_selectors: Sequence[Mapping[str, Any]], advanced_selectors: Sequence[Mapping[str, Any]], *, custom: bool
) -> bool:
    """Whether a trail's selectors log write management events (a trail without custom selectors logs all)."""
    if not custom:
        return True
    for selector in event_selectors:
        writes = selector.get("ReadWriteType", "All") in ("All", "WriteOnly")
        if writes and selector.get("IncludeManagementEvents", True):
            return True
    for advanced in advanced_selectors:
        fields = {str(item.get("Field")): item for item in advanced.get("FieldSelectors", [])}
        management = "Management" in fields.get("eventCategory", {}).get("Equals", [])
        reads_only = "true" in [str(value).lower() for value in fields.get("readOnly", {}).get("Equals", [])]
        if management and not reads_only:
            return True
    return False


def coverage_gaps(own: OwnResources, state: DeploymentState) -> list[Gap]:
    """Every rule, function and the trail as deployed, or a gap saying what is wrong."""
    gaps: list[Gap] = []
    for name in sorted(own.rules):
        rule = state.rules.get(name)
        if rule is None:
            continue  # not checked: reported through ``unverified``
        if not rule.exists:
            gaps.append(Gap(ResourceKind.RULE, name, "the rule is gone: its events reach no function"))
        elif not rule.enabled:
            gaps.append(Gap(ResourceKind.RULE, name, "the rule is disabled: its events reach no function"))
        elif rule.targets == 0:
            gaps.append(Gap(ResourceKind.RULE, name, "the rule has no target: its events reach no function"))
    for name in sorted(own.functions):
        function = state.functions.get(name)
        if function is None:
            continue
        if not function.exists:
            gaps.append(Gap(ResourceKind.FUNCTION, name, "the function is gone"))
        elif function.reserved_concurrency == 0:
            gaps.append(Gap(ResourceKind.FUNCTION, name, "reserved concurrency is 0: every invocation is throttled"))
        elif function.state not in ACTIVE_FUNCTION_STATES:
            gaps.append(Gap(ResourceKind.FUNCTION, name, f"the function is {function.state}: it cannot run"))
    trails = [trail for trail in state.trails if own.owns(ResourceKind.TRAIL, trail.name)]
    wanted = ", ".join(sorted(own.trails)) or "any trail"
    covered = any(trail.logging and trail.records_management_writes for trail in trails)
    # A trail AWS would not describe is reported unverified below, never taken for a stopped or missing one;
    # once a trail of amiguard's is seen logging, the others do not matter.
    unverified = {what: error for what, error in state.unverified.items() if _matters(what, own, covered=covered)}
    if not covered and not any(what.startswith("trail") for what in unverified):
        if not trails:
            gaps.append(Gap(ResourceKind.TRAIL, wanted, "no such trail covers this region: no CloudTrail events"))
        else:
            problem = (
                "logging is stopped"
                if not any(trail.logging for trail in trails)
                else "write management events are not recorded"
            )
            gaps.append(Gap(ResourceKind.TRAIL, wanted, f"{problem}: EventBridge receives no CloudTrail events"))
    for what, error in sorted(unverified.items()):
        kind, _, name = what.partition(" ")
        gaps.append(Gap(ResourceKind(kind), name or wanted, f"could not be verified: {error}", blind=False))
    return gaps


def _matters(what: str, own: OwnResources, *, covered: bool) -> bool:
    """Whether a check AWS refused still matters: a trail's only while no trail of amiguard's is seen logging."""
    kind, _, name = what.partition(" ")
    if kind != ResourceKind.TRAIL:
        return True
    return not covered and (not name or own.owns(ResourceKind.TRAIL, name))


# Organization mode: in every member account-region, the rules of org/member-forwarder.yaml forward AMI events
# to the central bus (fixed names, so the bus policy can admit exactly them: aws:SourceArn rule/amiguard-forward-*).
FORWARDING_RULES = ("amiguard-forward-ami-api-calls", "amiguard-forward-ami-state-changes")


def forwarding_gaps(region: str, images: int, rules: Mapping[str, RuleState]) -> list[Gap]:
    """An account-region with AMIs whose forwarding rules are missing or off: its AMI events never reach amiguard.

    Not ``blind``: the daily sweep still checks (and in enforce mode mends) that region; only events are lost,
    so a public share there lasts until the next sweep instead of seconds. A region without AMIs needs none yet
    (a new region StackSets did not add: reported once it holds an AMI).
    """
    if images == 0:
        return []
    gaps: list[Gap] = []
    for name in FORWARDING_RULES:
        rule = rules.get(name)
        if rule is None:
            continue  # not checked (the member role refused): the sweep reports it as unchecked
        if not rule.exists:
            problem = f"missing in {region}, which holds {images} AMI(s): their events never reach amiguard"
        elif not rule.enabled:
            problem = f"disabled in {region}, which holds {images} AMI(s): their events never reach amiguard"
        else:
            continue
        gaps.append(Gap(ResourceKind.RULE, name, problem, blind=False))
    return gaps
