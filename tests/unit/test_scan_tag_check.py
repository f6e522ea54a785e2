"""The scan's tag check: tag_enforcer's rules (required tags, violation tags, escalation) over listed AMIs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from amiguard.models.findings import Action, FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.settings import TagEscalation, load_settings
from amiguard.policy.checks import CheckContext, EscalateOverdue, MarkViolations, RegionFacts, TagCheck
from amiguard.policy.tagging import RecordChange, Step, ViolationRecord

OWN = "123456789012"
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
SINCE_NOW = "2026-11-27T06:00:00Z"
SINCE = "amiguard:violation-since"
MARKED = {"amiguard:violation": "missing:CostCenter", "amiguard:violation-since": "2026-01-01T00:00:00Z"}
JANUARY = ViolationRecord(datetime(2026, 1, 1, tzinfo=UTC), "missing:CostCenter")


def ami(image_id: str, tags: dict[str, str], **kw: Any) -> Image:
    return Image(image_id=image_id, region="us-east-1", owner_id=OWN, name="base", tags=tags, **kw)


def evaluate(
    images: list[Image],
    *,
    escalate: bool = True,
    records: dict[str, ViolationRecord] | None = None,
    **settings: Any,
) -> list[Any]:
    """The check over ``images``; amiguard's record holds a January violation of every AMI tagged ``MARKED``."""
    values = {"required_tags": "Owner,CostCenter"} | settings
    context = CheckContext(load_settings(**values), account=OWN, fix=False, now=NOW)
    if records is None:
        records = {i.image_id: JANUARY for i in images if i.tags.get("amiguard:violation-since") == MARKED[SINCE]}
    return TagCheck(escalate=escalate).evaluate(RegionFacts("us-east-1", images, violations=records), context)


def test_images_missing_the_same_tag_share_one_marking_remedy_when_found_together() -> None:
    # Given two AMIs lacking CostCenter and one compliant
    images = [
        ami("ami-0000000000000000a", {"Owner": "x"}),
        ami("ami-0000000000000000b", {"Owner": "y", "CostCenter": " "}),  # blank counts as missing
        ami("ami-0000000000000000c", {"Owner": "z", "CostCenter": "42"}),
    ]
    # When
    problems = evaluate(images)
    # Then: tag_enforcer's violation tags, one CreateTags for both
    assert [(p.verdict.type, p.image.image_id) for p in problems] == [
        (FindingType.MISSING_TAGS, "ami-0000000000000000a"),
        (FindingType.MISSING_TAGS, "ami-0000000000000000b"),
    ]
    remedy = MarkViolations(
        OWN,
        "us-east-1",
        ("ami-0000000000000000a", "ami-0000000000000000b"),
        (("amiguard:violation", "missing:CostCenter"), ("amiguard:violation-since", SINCE_NOW)),
        RecordChange.CREATE,
        "missing:CostCenter",
        NOW,
    )
    assert [p.remedy for p in problems] == [remedy, remedy]
    assert remedy.done is Action.TAGGED and remedy.would is Action.WOULD_TAG
    assert problems[0].verdict.evidence == {
        "violation": "missing:CostCenter",
        "missing": ["CostCenter"],
        "rules": {"Owner": "any non-empty value", "CostCenter": "any non-empty value"},
        "created_by": None,
    }


def test_violation_is_reported_but_neither_marked_nor_escalated_when_no_record_could_be_read() -> None:
    # Given no ledger: the start of a violation is unknown
    image = ami("ami-0000000000000000a", {"Owner": "x"} | MARKED)
    context = CheckContext(load_settings(required_tags="Owner,CostCenter", tag_escalation="deregister"), OWN, False)
    # When
    problems = TagCheck().evaluate(RegionFacts("us-east-1", [image], violations=None), context)
    # Then
    assert [(p.verdict.type, p.remedy) for p in problems] == [(FindingType.MISSING_TAGS, None)]


def test_forged_old_start_is_reported_and_not_escalated_when_amiguard_recorded_it_yesterday() -> None:
    # Given amiguard marked it yesterday; the tag says January
    yesterday = ViolationRecord(datetime(2026, 11, 26, 6, 0, tzinfo=UTC), "missing:CostCenter")
    image = ami("ami-0000000000000000a", {"Owner": "x"} | MARKED)
    # When
    problems = evaluate([image], records={image.image_id: yesterday}, tag_escalation="deregister")
    # Then: forged and the violation, both mended by restoring the recorded start; nothing escalated
    assert [p.verdict.type for p in problems] == [FindingType.FORGED_AMIGUARD_TAG, FindingType.MISSING_TAGS]
    assert problems[0].verdict.severity is Severity.HIGH
    assert problems[0].remedy.tags == (("amiguard:violation-since", "2026-11-26T06:00:00Z"),)


def test_violation_already_marked_is_reported_with_nothing_to_write_when_the_tags_tell_the_truth() -> None:
    # Given / When
    problems = evaluate([ami("ami-0000000000000000a", {"Owner": "x"} | MARKED)])
    # Then
    assert [(p.verdict.type, p.remedy) for p in problems] == [(FindingType.MISSING_TAGS, None)]


def test_value_outside_the_allowed_list_is_an_invalid_tag_when_the_rule_has_one() -> None:
    # Given
    rules = '{"Environment": {"allowed": ["dev", "prod"]}}'
    # When
    problems = evaluate([ami("ami-0000000000000000a", {"Environment": "qa"})], required_tags=rules)
    # Then
    assert [p.verdict.type for p in problems] == [FindingType.INVALID_TAGS]
    assert problems[0].verdict.evidence["invalid"] == {"Environment": "qa"}


@pytest.mark.parametrize("state", ["failed", "error", "invalid"])
def test_unusable_images_are_not_judged_when_their_state_says_so(state: str) -> None:
    assert evaluate([ami("ami-0000000000000000a", {}, state=state)]) == []


def test_overdue_violation_escalates_with_tag_escalation_when_the_grace_period_is_over() -> None:
    # Given marked in January, 72 h grace, TagEscalation=deprecate
    image = ami("ami-0000000000000000a", {"Owner": "x"} | MARKED)
    # When
    problems = evaluate([image], tag_escalation="deprecate")
    # Then
    escalated = [p for p in problems if p.verdict.type is FindingType.ESCALATED]
    assert len(escalated) == 1
    assert escalated[0].verdict.severity is Severity.MEDIUM
    assert escalated[0].remedy == EscalateOverdue(
        image.image_id, Step.DEPRECATE, TagEscalation.DEPRECATE, 72, NOW, JANUARY.since, image=image
    )
    assert escalated[0].remedy.done is Action.DEPRECATED


@pytest.mark.parametrize(
    ("recorded", "extra", "expected"),
    [
        (datetime(2026, 11, 26, 6, 0, tzinfo=UTC), {}, []),  # within 72 h
        (JANUARY.since, {"deprecation_time": "2026-11-27T06:30:00.000Z"}, []),  # already deprecated
        (JANUARY.since, {}, [FindingType.ESCALATED]),
    ],
    ids=["within-grace", "already-deprecated", "overdue"],
)
def test_escalation_only_when_overdue_and_not_done_when_the_image_varies(
    recorded: datetime, extra: dict[str, Any], expected: list[FindingType]
) -> None:
    since = {"amiguard:violation-since": recorded.strftime("%Y-%m-%dT%H:%M:%SZ")}
    image = ami("ami-0000000000000000a", {"Owner": "x"} | MARKED | since, **extra)
    record = ViolationRecord(recorded, "missing:CostCenter")
    problems = evaluate([image], records={image.image_id: record}, tag_escalation="deprecate")
    assert [p.verdict.type for p in problems if p.verdict.type is FindingType.ESCALATED] == expected


def test_overdue_image_is_reported_only_when_escalation_is_left_to_tag_enforcer() -> None:
    # Given the sweeper's check (tag_enforcer's hourly sweep escalates in the stack)
    image = ami("ami-0000000000000000a", {"Owner": "x"} | MARKED)
    # When
    [_, escalated] = evaluate([image], escalate=False, tag_escalation="disable")
    # Then
    assert escalated.remedy is None
    assert "tag_enforcer" in escalated.verdict.summary


def test_protected_image_is_a_high_finding_for_a_human_when_deregistration_is_due() -> None:
    image = ami("ami-0000000000000000a", {"Owner": "x"} | MARKED, deregistration_protection=True)
    [_, escalated] = evaluate([image], tag_escalation="deregister")
    assert (escalated.verdict.severity, escalated.remedy) == (Severity.HIGH, None)
    assert "protection" in escalated.verdict.summary


def test_nothing_escalates_when_tag_escalation_is_none() -> None:
    image = ami("ami-0000000000000000a", {"Owner": "x"} | MARKED)
    assert [p.verdict.type for p in evaluate([image])] == [FindingType.MISSING_TAGS]
