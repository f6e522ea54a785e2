"""Tag policy for AMIs: what amiguard writes, what users must supply, and what happens when they don't.

Triggered by CreateImage, CopyImage, RegisterImage (a new AMI), by CreateTags / DeleteTags naming an
``ami-*`` id (re-evaluation), and by the escalation sweep. The service reads current tags (DescribeImages)
and asks this module:

- :func:`provenance_tags`: the ``amiguard:*`` facts the event tells (who created the AMI, from what);
- :func:`inherited_tags`: missing required (and ``InheritTags``) keys taken from the source instance/AMI;
- :func:`evaluate_required_tags`: which required tags are missing or have a value the rule rejects;
- :func:`violation_change`: which ``amiguard:violation*`` tags to set or remove, and whether that is news;
- :func:`decide_escalation`: what to do with an AMI still in violation after the grace period.

``amiguard:*`` keys are amiguard's own: they are never required, never inherited, never copied to snapshots,
and a user-supplied value for one is replaced by the fact amiguard knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from amiguard.models.findings import FindingType
from amiguard.models.images import Image
from amiguard.models.settings import TagEscalation, TagRule

AMIGUARD_PREFIX = "amiguard:"
CREATED_BY = "amiguard:created-by"
SOURCE_INSTANCE = "amiguard:source-instance"
SOURCE_IMAGE = "amiguard:source-image"
SOURCE_REGION = "amiguard:source-region"
VIOLATION = "amiguard:violation"
VIOLATION_SINCE = "amiguard:violation-since"
# Set once when an escalation cannot be carried out (so the sweep alerts once, not every hour).
ESCALATION_BLOCKED = "amiguard:escalation-blocked"
VIOLATION_KEYS = (VIOLATION, VIOLATION_SINCE, ESCALATION_BLOCKED)

TAG_VALUE_MAX = 256  # EC2's limit; longer values are rejected by CreateTags
# AMIs that never became (or no longer are) usable: nothing to tag, nothing to enforce.
SETTLED_BAD = frozenset({"failed", "deregistered", "error", "invalid"})

INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")


def is_amiguard_key(key: str) -> bool:
    return key.startswith(AMIGUARD_PREFIX)


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags a user supplied (everything but ``amiguard:*``)."""
    return {key: value for key, value in tags.items() if not is_amiguard_key(key)}


def tag_value(value: str) -> str:
    """A value EC2 accepts: at most 256 characters (unicode is fine)."""
    return value[:TAG_VALUE_MAX]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


# --- what amiguard knows from the event -------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """Where a new AMI came from, as the creating event says."""

    created_by: str | None = None
    source_instance: str | None = None
    source_image: str | None = None
    source_region: str | None = None


def provenance_tags(current: Mapping[str, str], provenance: Provenance) -> dict[str, str]:
    """The ``amiguard:*`` facts to write: those the AMI lacks or carries with another value.

    A fact the event does not tell (a trimmed record without ``userIdentity``) leaves the tag alone.
    A different value (supplied by the user at creation, or copied from the source AMI by CopyImage) is
    replaced: these keys are amiguard's, never the user's.
    """
    facts = {
        CREATED_BY: provenance.created_by,
        SOURCE_INSTANCE: provenance.source_instance,
        SOURCE_IMAGE: provenance.source_image,
        SOURCE_REGION: provenance.source_region,
    }
    return {key: tag_value(value) for key, value in facts.items() if value and current.get(key) != tag_value(value)}


def keys_to_inherit(rules: Mapping[str, TagRule], extra: Iterable[str]) -> tuple[str, ...]:
    """Required keys first, then ``InheritTags``; never an ``amiguard:*`` key."""
    keys = [*rules, *extra]
    return tuple(dict.fromkeys(key for key in keys if not is_amiguard_key(key)))


def missing_keys(current: Mapping[str, str], keys: Iterable[str]) -> tuple[str, ...]:
    return tuple(key for key in keys if _blank(current.get(key)))


def inherited_tags(current: Mapping[str, str], source: Mapping[str, str], keys: Iterable[str]) -> dict[str, str]:
    """Keys the AMI lacks (or has blank) and the source has with a non-blank value."""
    return {
        key: tag_value(source[key])
        for key in keys
        if not is_amiguard_key(key) and _blank(current.get(key)) and not _blank(source.get(key))
    }


def snapshot_tags(image_tags: Mapping[str, str], keys: Iterable[str]) -> dict[str, str]:
    """The AMI's values for ``keys`` (required + inherited keys), to copy onto its EBS snapshots."""
    return {key: image_tags[key] for key in keys if not is_amiguard_key(key) and not _blank(image_tags.get(key))}


# --- required tags ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagEvaluation:
    """Required tags an AMI lacks (absent or blank) and those whose value a rule rejects."""

    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()
    rejected_values: Mapping[str, str] = field(default_factory=dict)

    @property
    def compliant(self) -> bool:
        return not self.missing and not self.invalid

    @property
    def violation(self) -> str | None:
        """``missing:Owner,CostCenter``, ``invalid:Environment`` or both, ``;``-separated (≤ 256 chars)."""
        parts = []
        if self.missing:
            parts.append("missing:" + ",".join(self.missing))
        if self.invalid:
            parts.append("invalid:" + ",".join(self.invalid))
        return tag_value(";".join(parts)) if parts else None

    @property
    def finding_type(self) -> FindingType:
        return FindingType.MISSING_TAGS if self.missing else FindingType.INVALID_TAGS


def value_allowed(value: str, rule: TagRule) -> bool:
    """An allowed-values list matches exactly; a pattern must match the whole value."""
    if rule.allowed is not None and value not in rule.allowed:
        return False
    return not (rule.pattern is not None and re.fullmatch(rule.pattern, value) is None)


def evaluate_required_tags(tags: Mapping[str, str], rules: Mapping[str, TagRule]) -> TagEvaluation:
    """Check every required key, in the order the settings list them. Keys are case-sensitive, as in EC2."""
    missing: list[str] = []
    invalid: list[str] = []
    rejected: dict[str, str] = {}
    for key, rule in rules.items():
        value = tags.get(key)
        if value is None or _blank(value):
            missing.append(key)
        elif not value_allowed(value, rule):
            invalid.append(key)
            rejected[key] = value
    return TagEvaluation(tuple(missing), tuple(invalid), rejected)


def carried_over_violation(tags: Mapping[str, str], created: str | None) -> tuple[str, ...]:
    """Violation keys a new AMI carries from before it existed (CopyImage with ``CopyImageTags``, or supplied at
    creation): ``violation-since`` earlier than the AMI's creation. amiguard did not write them for this AMI;
    they are ignored (and replaced), so the copy gets its own alert and its own grace period."""
    born = parse_iso(created)
    since = parse_iso(tags.get(VIOLATION_SINCE))
    present = tuple(key for key in VIOLATION_KEYS if key in tags)
    if not present:
        return ()
    if since is None or (born is not None and since < born - timedelta(seconds=1)):
        return present
    return ()


# --- violation tags ---------------------------------------------------------------------------------------


class Transition(StrEnum):
    NEW = "new"  # was compliant (or unseen), now violating: alert
    CHANGED = "changed"  # still violating, for other keys: alert
    UNCHANGED = "unchanged"  # same violation as already tagged: nothing new (duplicate events end here)
    RESOLVED = "resolved"  # was violating, now compliant: info finding
    COMPLIANT = "compliant"  # compliant before and after


@dataclass(frozen=True)
class ViolationChange:
    transition: Transition
    add: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()

    @property
    def newsworthy(self) -> bool:
        return self.transition in {Transition.NEW, Transition.CHANGED, Transition.RESOLVED}


def violation_change(tags: Mapping[str, str], evaluation: TagEvaluation, now: datetime) -> ViolationChange:
    """The ``amiguard:violation*`` tags that make ``tags`` tell the evaluation's truth.

    ``violation-since`` keeps its first value while the AMI stays in violation, even when the missing keys
    change: the grace period runs from the first moment the AMI was non-compliant.
    """
    current = tags.get(VIOLATION)
    if evaluation.compliant:
        stale = tuple(key for key in VIOLATION_KEYS if key in tags)
        return ViolationChange(Transition.RESOLVED if current is not None else Transition.COMPLIANT, remove=stale)
    violation = evaluation.violation or ""
    recorded = tags.get(VIOLATION_SINCE)
    since = recorded if current is not None and recorded and parse_iso(recorded) else iso(now)
    add: dict[str, str] = {}
    if current != violation:
        add[VIOLATION] = violation
    if tags.get(VIOLATION_SINCE) != since:
        add[VIOLATION_SINCE] = since
    if current is None:
        transition = Transition.NEW
    elif current != violation:
        transition = Transition.CHANGED
    else:
        transition = Transition.UNCHANGED
    return ViolationChange(transition, add=add)


# --- escalation -------------------------------------------------------------------------------------------


class Step(StrEnum):
    DEPRECATE = "deprecate"
    DISABLE = "disable"
    DEREGISTER = "deregister"
    WAIT = "wait"  # grace period not over
    DONE = "done"  # already deprecated / disabled
    BLOCKED = "blocked"  # must not be carried out: alert a human instead


@dataclass(frozen=True)
class EscalationDecision:
    step: Step
    reason: str


def violation_age(tags: Mapping[str, str], now: datetime) -> timedelta | None:
    since = parse_iso(tags.get(VIOLATION_SINCE))
    return now - since if since else None


def decide_escalation(
    image: Image,
    *,
    escalation: TagEscalation,
    grace_hours: int,
    now: datetime,
    instances_in_use: int = 0,
) -> EscalationDecision:
    """What to do with an AMI whose ``amiguard:violation-since`` may be older than the grace period.

    ``instances_in_use`` (instances launched from it that are not terminated) matters for ``deregister``
    only; the caller counts them for that case.
    """
    age = violation_age(image.tags, now)
    if age is None:
        return EscalationDecision(Step.WAIT, "no violation-since tag with a valid time")
    if age < timedelta(hours=grace_hours):
        return EscalationDecision(Step.WAIT, f"in violation for {age}, grace period is {grace_hours} h")
    if escalation is TagEscalation.DEPRECATE:
        deprecated_at = parse_iso(image.deprecation_time)
        if deprecated_at is not None and deprecated_at <= now + timedelta(hours=1):
            return EscalationDecision(Step.DONE, f"already deprecated at {image.deprecation_time}")
        return EscalationDecision(Step.DEPRECATE, f"in violation for {age}")
    if escalation is TagEscalation.DISABLE:
        if image.state == "disabled":
            return EscalationDecision(Step.DONE, "already disabled")
        return EscalationDecision(Step.DISABLE, f"in violation for {age}")
    if escalation is TagEscalation.DEREGISTER:
        if image.deregistration_protection:
            return EscalationDecision(Step.BLOCKED, "deregistration protection is on")
        if instances_in_use:
            in_use = f"{instances_in_use} instance(s) launched from it are not terminated"
            return EscalationDecision(Step.BLOCKED, in_use)
        return EscalationDecision(Step.DEREGISTER, f"in violation for {age}")
    return EscalationDecision(Step.WAIT, "escalation is off")


def deprecation_time(now: datetime) -> datetime:
    """EnableImageDeprecation refuses a time in the past and rounds to the minute: the next whole minute."""
    return (now + timedelta(minutes=1)).replace(second=0, microsecond=0)


# --- reading CreateTags / DeleteTags events ---------------------------------------------------------------


@dataclass(frozen=True)
class TagCall:
    """What a CreateTags / DeleteTags request names: AMI ids among its resources, and the tag keys."""

    image_ids: tuple[str, ...]
    resource_count: int
    keys: tuple[str, ...] | None  # None: no tag set (DeleteTags without tags deletes them all)
    malformed: str | None = None


def _items(node: object) -> list[object] | None:
    if isinstance(node, Mapping):
        items = node.get("items")
        return items if isinstance(items, list) else None
    return node if isinstance(node, list) else None


def read_tag_call(params: Mapping[str, object], *, image_id_pattern: re.Pattern[str]) -> TagCall:
    """``resourcesSet.items[].resourceId`` (mixed types, up to 1,000) and ``tagSet.items[].key``."""
    resources = _items(params.get("resourcesSet"))
    if resources is None:
        return TagCall((), 0, None, "requestParameters.resourcesSet.items is missing or not a list")
    ids = [item.get("resourceId") for item in resources if isinstance(item, Mapping)]
    images = tuple(dict.fromkeys(i for i in ids if isinstance(i, str) and image_id_pattern.match(i)))
    tag_items = _items(params.get("tagSet"))
    keys: tuple[str, ...] | None = None
    if tag_items is not None:
        keys = tuple(str(item["key"]) for item in tag_items if isinstance(item, Mapping) and "key" in item)
    return TagCall(images, len(resources), keys)


def touches_policy(keys: tuple[str, ...] | None, rules: Mapping[str, TagRule], extra: Iterable[str] = ()) -> bool:
    """Whether a tag change can alter compliance: a required key, an ``amiguard:*`` key, or all tags."""
    if not keys:
        return True  # no tag set: DeleteTags removes every tag
    watched = set(rules) | set(extra)
    return any(key in watched or is_amiguard_key(key) for key in keys)
