"""Tag policy for AMIs: what amiguard writes, what users must supply, and what happens when they don't.

Triggered by CreateImage, CopyImage, RegisterImage (a new AMI), by CreateTags / DeleteTags naming an
``ami-*`` id (re-evaluation), and by the escalation sweep. The service reads current tags (DescribeImages)
and asks this module:

- :func:`provenance_tags`: the ``amiguard:*`` facts the event tells (who created the AMI, from what);
- :func:`inherited_tags`: missing required (and ``InheritTags``) keys taken from the source instance/AMI;
- :func:`evaluate_required_tags`: which required tags are missing or have a value the rule rejects;
- :func:`violation_change`: which ``amiguard:violation*`` tags to set or remove, which change amiguard's own
  record of the violation needs (:class:`ViolationRecord`, the ledger), whether that is news, and which tags
  were forged;
- :func:`tag_violation_verdict`, :func:`forged_tag_verdict`, :func:`escalated_verdict`: the findings, built
  here once for tag_enforcer and the scan;
- :func:`decide_escalation`: what to do with an AMI still in violation after the grace period, counted from
  the record (a tag anyone can write never decides a destructive step).

``amiguard:*`` keys are amiguard's own: they are never required, never inherited, never copied to snapshots,
and a user-supplied value for one is replaced by the fact amiguard knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from amiguard.models.findings import Action, FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.settings import Settings, TagEscalation, TagRule
from amiguard.policy.sharing import Verdict

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


# --- violation tags and amiguard's own record of them -----------------------------------------------------


@dataclass(frozen=True)
class ViolationRecord:
    """amiguard's record (the ledger) of an AMI's violation: when amiguard first marked it, and what it marked.

    The ``amiguard:violation*`` tags only mirror it for people: anyone with ec2:CreateTags can write them, so
    a tag never tells amiguard when a violation started (escalation reads ``since`` from here).
    """

    since: datetime
    violation: str


class RecordChange(StrEnum):
    NONE = "none"
    CREATE = "create"  # first time amiguard marks this violation: the grace period starts now
    UPDATE = "update"  # still violating, other keys: ``violation`` changes, ``since`` stays
    DELETE = "delete"  # compliant again


class Transition(StrEnum):
    NEW = "new"  # not marked yet (no record, or the tags do not show the record): alert
    CHANGED = "changed"  # still violating, for other keys than recorded: alert
    UNCHANGED = "unchanged"  # same violation as recorded and tagged: nothing new (duplicate events end here)
    RESOLVED = "resolved"  # recorded as violating, now compliant: info finding
    COMPLIANT = "compliant"  # compliant, and amiguard had recorded nothing


@dataclass(frozen=True)
class ViolationChange:
    """What makes the tags and the record tell the evaluation's truth, and what of it is news.

    ``forged``: ``amiguard:violation*`` tags present with a value amiguard never wrote (no record behind
    them, or a ``violation-since`` other than the recorded one): a ``forged-amiguard-tag`` finding, and the
    tags are rewritten from the record. A tag merely missing is repaired, not reported: amiguard writes the
    record before the tags, so its own interrupted write looks like that.
    """

    transition: Transition
    add: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    record: RecordChange = RecordChange.NONE
    since: datetime | None = None  # the violation start amiguard stands by (None: compliant)
    violation: str | None = None
    previous: str | None = None  # the recorded violation a CHANGED replaces
    forged: Mapping[str, str] = field(default_factory=dict)

    @property
    def newsworthy(self) -> bool:
        return self.transition in {Transition.NEW, Transition.CHANGED, Transition.RESOLVED}


def forged_violation_tags(tags: Mapping[str, str], record: ViolationRecord | None) -> dict[str, str]:
    """The ``amiguard:violation*`` tags whose value amiguard's record does not back."""
    if record is None:
        return {key: tags[key] for key in (VIOLATION, VIOLATION_SINCE) if key in tags}
    since = tags.get(VIOLATION_SINCE)
    if since is not None and parse_iso(since) != record.since:
        return {VIOLATION_SINCE: since}
    return {}


def violation_change(
    tags: Mapping[str, str],
    evaluation: TagEvaluation,
    now: datetime,
    record: ViolationRecord | None,
    *,
    new_image: bool = False,
) -> ViolationChange:
    """Tags and record changes for ``evaluation``, decided from amiguard's ``record``, never from the tags.

    ``violation-since`` is the record's while the AMI stays in violation, even when the missing keys change:
    the grace period runs from the first moment amiguard marked it. On a ``new_image`` without a record,
    violation tags were carried over (CopyImage copies the source's tags) or supplied at creation: replaced,
    not reported as forged.
    """
    forged = {} if new_image and record is None else forged_violation_tags(tags, record)
    if evaluation.compliant:
        stale = tuple(key for key in VIOLATION_KEYS if key in tags)
        if record is not None:
            return ViolationChange(Transition.RESOLVED, remove=stale, record=RecordChange.DELETE, forged=forged)
        return ViolationChange(Transition.COMPLIANT, remove=stale, forged=forged)
    violation = evaluation.violation or ""
    if record is None:
        since, change, transition, previous = now.replace(microsecond=0), RecordChange.CREATE, Transition.NEW, None
    elif record.violation != violation:
        since, change, transition, previous = record.since, RecordChange.UPDATE, Transition.CHANGED, record.violation
    else:
        unmarked = tags.get(VIOLATION) != violation
        since, change, previous = record.since, RecordChange.NONE, None
        transition = Transition.NEW if unmarked else Transition.UNCHANGED
    add: dict[str, str] = {}
    if tags.get(VIOLATION) != violation:
        add[VIOLATION] = violation
    if tags.get(VIOLATION_SINCE) != iso(since):
        add[VIOLATION_SINCE] = iso(since)
    # a blocked escalation of a violation amiguard never recorded is not amiguard's either
    remove = (ESCALATION_BLOCKED,) if record is None and ESCALATION_BLOCKED in tags else ()
    return ViolationChange(
        transition,
        add=add,
        remove=remove,
        record=change,
        since=since,
        violation=violation,
        previous=previous,
        forged=forged,
    )


# --- the findings (one builder each, for tag_enforcer and the scan alike) ---------------------------------


def describe_rule(rule: TagRule) -> str:
    if rule.allowed is not None:
        return "one of " + ", ".join(rule.allowed)
    if rule.pattern is not None:
        return f"matches {rule.pattern}"
    return "any non-empty value"


def _named(image: Image) -> str:
    return f"AMI {image.image_id}" + (f" ({image.name})" if image.name else "")


def tag_violation_verdict(
    image: Image,
    evaluation: TagEvaluation,
    rules: Mapping[str, TagRule],
    change: ViolationChange,
    *,
    inherited: Mapping[str, str] | None = None,
    notes: Iterable[str] = (),
) -> Verdict:
    """``missing-tags`` / ``invalid-tags`` for an AMI, from its tags (``image.tags``: as amiguard leaves them)."""
    if evaluation.missing:
        summary = f"{_named(image)} lacks required tags {', '.join(evaluation.missing)}."
    else:
        summary = f"{_named(image)} has invalid values for {', '.join(evaluation.invalid)}."
    evidence: dict[str, Any] = {
        "violation": evaluation.violation,
        "missing": list(evaluation.missing),
        "rules": {key: describe_rule(rule) for key, rule in rules.items()},
        "created_by": image.tags.get(CREATED_BY),
    }
    if evaluation.rejected_values:
        evidence["invalid"] = dict(evaluation.rejected_values)
    if change.previous is not None:
        evidence["previous_violation"] = change.previous
    if inherited:
        evidence["inherited"] = dict(inherited)
    if notes := list(notes):
        evidence["notes"] = notes
    return Verdict(evaluation.finding_type, Severity.MEDIUM, summary, evidence)


def forged_tag_verdict(image: Image, change: ViolationChange, record: ViolationRecord | None) -> Verdict:
    """``forged-amiguard-tag``: someone wrote amiguard's violation tags; amiguard goes by its record instead."""
    keys = ", ".join(sorted(change.forged))
    if record is None:
        why = "amiguard has no record of a violation"
    else:
        why = f"amiguard recorded the violation at {iso(record.since)}"
    return Verdict(
        FindingType.FORGED_AMIGUARD_TAG,
        Severity.HIGH,
        f"{_named(image)} carries {keys} that amiguard did not write ({why}): ignored and rewritten.",
        {
            "forged": dict(sorted(change.forged.items())),
            "recorded_since": iso(record.since) if record else None,
            "recorded_violation": record.violation if record else None,
            "restored": dict(sorted(change.add.items())),
        },
    )


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


def decide_escalation(
    image: Image,
    *,
    since: datetime | None,
    escalation: TagEscalation,
    grace_hours: int,
    now: datetime,
    instances_in_use: int = 0,
) -> EscalationDecision:
    """What to do with an AMI in violation since ``since`` (amiguard's record, never a tag).

    ``instances_in_use`` (instances launched from it that are not terminated) matters for ``deregister``
    only; the caller counts them for that case.
    """
    if since is None:
        return EscalationDecision(Step.WAIT, "amiguard has no record of this violation")
    age = now - since
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


ESCALATION_ACTIONS = {
    Step.DEPRECATE: Action.DEPRECATED,
    Step.DISABLE: Action.DISABLED,
    Step.DEREGISTER: Action.DEREGISTERED,
}


def escalated_verdict(
    image: Image, step: Step, reason: str, record: ViolationRecord, settings: Settings, *, acted_by: str
) -> Verdict:
    """``escalated``: an AMI in violation past ``TagGraceHours`` (by amiguard's record), what ``TagEscalation``
    does, or why it must not."""
    violation = record.violation
    if step is Step.BLOCKED:
        summary = f"{_named(image)} is overdue ({violation}) but must not be deregistered: {reason}; a human decides."
    else:
        summary = f"{_named(image)} is overdue ({violation}): TagEscalation={step.value}, {acted_by}."
    return Verdict(
        FindingType.ESCALATED,
        Severity.HIGH if step in {Step.BLOCKED, Step.DEREGISTER} else Severity.MEDIUM,
        summary,
        {
            "violation": violation,
            "violation_since": iso(record.since),
            "escalation": settings.tag_escalation.value,
            "grace_hours": settings.tag_grace_hours,
            "step": step.value,
            "reason": reason,
            "created_by": image.tags.get(CREATED_BY),
        },
    )


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
