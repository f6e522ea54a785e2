"""The scan's tag check: tag_enforcer's rules (required tags, violation tags, escalation) over listed AMIs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from amiguard.models.findings import Action, FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.settings import TagEscalation, load_settings
from amiguard.policy.checks import CheckContext, EscalateOverdue, MarkViolations, RegionFacts, TagCheck
from amiguard.policy.tagging import Step

OWN = "123456789012"
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
SINCE_NOW = "2026-11-27T06:00:00Z"
MARKED = {"amiguard:violation": "missing:CostCenter", "amiguard:violation-since": "2026-01-01T00:00:00Z"}


def ami(image_id: str, tags: dict[str, str], **kw: Any) -> Image:
    return Image(image_id=image_id, region="us-east-1", owner_id=OWN, name="base", tags=tags, **kw)


def evaluate(images: list[Image], *, escalate: bool = True, **settings: Any) -> list[Any]:
    values = {"required_tags": "Owner,CostCenter"} | settings
    context = CheckContext(load_settings(**values), account=OWN, fix=False, now=NOW)
    return TagCheck(escalate=escalate).evaluate(RegionFacts("us-east-1", images), context)


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
        ("ami-0000000000000000a", "ami-0000000000000000b"),
        (("amiguard:violation", "missing:CostCenter"), ("amiguard:violation-since", SINCE_NOW)),
    )
    assert [p.remedy for p in problems] == [remedy, remedy]
    assert remedy.done is Action.TAGGED and remedy.would is Action.WOULD_TAG
    assert problems[0].verdict.evidence == {"violation": "missing:CostCenter", "missing": ["CostCenter"]}


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
        image.image_id, Step.DEPRECATE, TagEscalation.DEPRECATE, 72, NOW, image=image
    )
    assert escalated[0].remedy.done is Action.DEPRECATED


@pytest.mark.parametrize(
    ("tags", "extra", "expected"),
    [
        ({"amiguard:violation-since": "2026-11-26T06:00:00Z"}, {}, []),  # within 72 h
        ({}, {"deprecation_time": "2026-11-27T06:30:00.000Z"}, []),  # already deprecated
        ({}, {}, [FindingType.ESCALATED]),
    ],
    ids=["within-grace", "already-deprecated", "overdue"],
)
def test_escalation_only_when_overdue_and_not_done_when_the_image_varies(
    tags: dict[str, str], extra: dict[str, Any], expected: list[FindingType]
) -> None:
    image = ami("ami-0000000000000000a", {"Owner": "x"} | MARKED | tags, **extra)
    problems = evaluate([image], tag_escalation="deprecate")
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
