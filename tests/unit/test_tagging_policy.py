"""Tag policy: required-tag evaluation, amiguard's own tags, inheritance, violation tags and escalation.
Pure: no moto, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from amiguard.models.findings import FindingType
from amiguard.models.images import Image
from amiguard.models.settings import IMAGE_ID, TagEscalation, TagRule
from amiguard.policy.tagging import (
    CREATED_BY,
    ESCALATION_BLOCKED,
    SOURCE_IMAGE,
    SOURCE_INSTANCE,
    SOURCE_REGION,
    VIOLATION,
    VIOLATION_SINCE,
    Provenance,
    RecordChange,
    Step,
    Transition,
    ViolationRecord,
    decide_escalation,
    deprecation_time,
    evaluate_required_tags,
    inherited_tags,
    keys_to_inherit,
    provenance_tags,
    read_tag_call,
    snapshot_tags,
    touches_policy,
    violation_change,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DEFAULT_RULES = {"Owner": TagRule(), "CostCenter": TagRule()}
RICH_RULES = {
    "Owner": TagRule(pattern=r"[^@]+@example\.com"),
    "Environment": TagRule(allowed=("dev", "prod")),
    "CostCenter": TagRule(),
}


# --- evaluation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "rules", "missing", "invalid", "violation"),
    [
        ({}, DEFAULT_RULES, ("Owner", "CostCenter"), (), "missing:Owner,CostCenter"),
        ({"Owner": "ana", "CostCenter": "cc-1"}, DEFAULT_RULES, (), (), None),
        ({"Owner": "  ", "CostCenter": "cc-1"}, DEFAULT_RULES, ("Owner",), (), "missing:Owner"),
        ({"owner": "ana", "CostCenter": "cc-1"}, DEFAULT_RULES, ("Owner",), (), "missing:Owner"),
        (
            {"Owner": "ana@example.com", "Environment": "staging", "CostCenter": "1"},
            RICH_RULES,
            (),
            ("Environment",),
            "invalid:Environment",
        ),
        (
            {"Owner": "ana@example.com.evil", "Environment": "prod"},
            RICH_RULES,
            ("CostCenter",),
            ("Owner",),
            "missing:CostCenter;invalid:Owner",
        ),
        ({"Owner": "ana@example.com", "Environment": "prod", "CostCenter": "Ünïcødé 💸"}, RICH_RULES, (), (), None),
        ({"Owner": "x", "CostCenter": "y", "amiguard:violation": "missing:Owner"}, DEFAULT_RULES, (), (), None),
        ({"Owner": "x", "CostCenter": "y"}, {}, (), (), None),
    ],
    ids=[
        "no-tags",
        "compliant",
        "blank-value-is-missing",
        "keys-are-case-sensitive",
        "value-not-allowed",
        "pattern-must-match-whole-value-and-missing-reported-first",
        "unicode-values",
        "amiguard-tags-ignored",
        "no-rules",
    ],
)
def test_required_tags_are_evaluated_when_rules_apply(tags, rules, missing, invalid, violation):
    evaluation = evaluate_required_tags(tags, rules)

    assert evaluation.missing == missing
    assert evaluation.invalid == invalid
    assert evaluation.violation == violation
    assert evaluation.compliant is (violation is None)


def test_finding_type_is_missing_tags_when_any_tag_is_missing_else_invalid_tags():
    assert evaluate_required_tags({}, DEFAULT_RULES).finding_type is FindingType.MISSING_TAGS
    only_invalid = evaluate_required_tags(
        {"Owner": "a@example.com", "Environment": "qa", "CostCenter": "1"}, RICH_RULES
    )
    assert only_invalid.finding_type is FindingType.INVALID_TAGS
    assert only_invalid.rejected_values == {"Environment": "qa"}


def test_violation_value_fits_a_tag_value_when_many_keys_are_missing():
    rules = {f"Key{index:03d}": TagRule() for index in range(100)}

    violation = evaluate_required_tags({}, rules).violation

    assert violation is not None and len(violation) == 256 and violation.startswith("missing:Key000,Key001")


# --- amiguard's own tags --------------------------------------------------------------------------------


def test_provenance_tags_are_written_when_absent():
    provenance = Provenance("arn:aws:iam::123456789012:user/bob", source_instance="i-0123456789abcdef0")

    assert provenance_tags({}, provenance) == {
        CREATED_BY: "arn:aws:iam::123456789012:user/bob",
        SOURCE_INSTANCE: "i-0123456789abcdef0",
    }


def test_provenance_tags_replace_user_supplied_values_when_they_differ_from_the_event():
    provenance = Provenance(
        "arn:aws:iam::123456789012:role/Dev/ana", source_image="ami-0528b3966f95526ee", source_region="us-west-2"
    )
    current = {CREATED_BY: "someone-else", SOURCE_IMAGE: "ami-0528b3966f95526ee", SOURCE_REGION: "eu-west-1"}

    assert provenance_tags(current, provenance) == {
        CREATED_BY: "arn:aws:iam::123456789012:role/Dev/ana",
        SOURCE_REGION: "us-west-2",
    }


def test_provenance_tags_leave_created_by_alone_when_the_event_names_no_principal():
    assert provenance_tags({CREATED_BY: "earlier"}, Provenance(None)) == {}


def test_created_by_is_truncated_to_256_characters_when_the_principal_is_longer():
    long_principal = "arn:aws:iam::123456789012:role/" + "r" * 300

    assert len(provenance_tags({}, Provenance(long_principal))[CREATED_BY]) == 256


# --- inheritance and snapshots ------------------------------------------------------------------------


def test_missing_required_tags_are_inherited_when_the_source_has_them():
    source = {"Owner": "ana", "CostCenter": "", "Project": "x", "amiguard:created-by": "old"}

    inherited = inherited_tags({"CostCenter": "cc"}, source, keys_to_inherit(DEFAULT_RULES, ["Project"]))

    assert inherited == {"Owner": "ana", "Project": "x"}


def test_amiguard_keys_are_never_inherited_when_asked_for():
    assert keys_to_inherit({}, ["amiguard:created-by", "Team"]) == ("Team",)
    assert inherited_tags({}, {"amiguard:violation": "x"}, ["amiguard:violation"]) == {}


def test_snapshot_tags_are_the_required_values_when_the_ami_has_them():
    tags = {"Owner": "ana", "CostCenter": "cc", "Name": "web", CREATED_BY: "x", VIOLATION: "y"}

    assert snapshot_tags(tags, keys_to_inherit(DEFAULT_RULES, ())) == {"Owner": "ana", "CostCenter": "cc"}


# --- violation tags, decided from amiguard's record -------------------------------------------------------

MARKED_AT = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
RECORD = ViolationRecord(since=MARKED_AT, violation="missing:Owner,CostCenter")
MARKED = {VIOLATION: "missing:Owner,CostCenter", VIOLATION_SINCE: "2026-11-20T08:00:00Z"}


def change_for(tags, record, **kw):
    return violation_change(tags, evaluate_required_tags(tags, DEFAULT_RULES), NOW, record, **kw)


def test_new_violation_is_recorded_and_tagged_when_amiguard_has_no_record():
    change = change_for({}, None)

    assert change.transition is Transition.NEW and change.record is RecordChange.CREATE
    assert change.add == {VIOLATION: "missing:Owner,CostCenter", VIOLATION_SINCE: "2026-11-26T12:00:00Z"}
    assert change.since == NOW and change.forged == {}
    assert change.newsworthy


def test_unchanged_violation_writes_nothing_when_the_same_event_arrives_twice():
    change = change_for(MARKED, RECORD)

    assert change.transition is Transition.UNCHANGED and change.add == {} and change.remove == ()
    assert change.record is RecordChange.NONE and change.forged == {}
    assert not change.newsworthy


def test_changed_violation_keeps_the_recorded_start_when_other_keys_are_now_missing():
    change = change_for({"Owner": "ana"} | MARKED, RECORD)

    assert change.transition is Transition.CHANGED and change.record is RecordChange.UPDATE
    assert change.add == {VIOLATION: "missing:CostCenter"} and change.since == MARKED_AT
    assert change.previous == "missing:Owner,CostCenter"


def test_forged_older_start_is_reported_and_the_recorded_one_restored_when_the_tag_disagrees():
    forged = MARKED | {VIOLATION_SINCE: "2020-01-01T00:00:00Z"}

    change = change_for(forged, RECORD)

    assert change.forged == {VIOLATION_SINCE: "2020-01-01T00:00:00Z"}
    assert change.add == {VIOLATION_SINCE: "2026-11-20T08:00:00Z"} and change.since == MARKED_AT
    assert change.transition is Transition.UNCHANGED


def test_forged_violation_tags_do_not_hide_a_new_violation_when_amiguard_recorded_none():
    # Given someone tagged the AMI as already marked, then deleted Owner
    change = change_for(MARKED | {VIOLATION_SINCE: "2020-01-01T00:00:00Z"}, None)

    assert change.transition is Transition.NEW and change.record is RecordChange.CREATE
    assert change.forged == {VIOLATION: "missing:Owner,CostCenter", VIOLATION_SINCE: "2020-01-01T00:00:00Z"}
    assert change.add == {VIOLATION_SINCE: "2026-11-26T12:00:00Z"}


def test_tags_carried_onto_a_new_image_are_replaced_not_reported_when_there_is_no_record():
    change = change_for(MARKED, None, new_image=True)

    assert change.forged == {} and change.transition is Transition.NEW
    assert change.add == {VIOLATION_SINCE: "2026-11-26T12:00:00Z"}


def test_recorded_violation_is_alerted_again_when_its_tags_were_never_written():
    # amiguard writes the record before the tags: a retry after a failed tag write still alerts
    change = change_for({}, RECORD)

    assert change.transition is Transition.NEW and change.record is RecordChange.NONE and change.forged == {}
    assert change.add == MARKED


def test_unreadable_start_is_forged_and_rewritten_when_a_record_exists():
    change = change_for(MARKED | {VIOLATION_SINCE: "yesterday"}, RECORD)

    assert change.forged == {VIOLATION_SINCE: "yesterday"} and change.add == {VIOLATION_SINCE: "2026-11-20T08:00:00Z"}


def test_violation_tags_and_record_are_removed_when_the_ami_is_fixed():
    tags = {"Owner": "a", "CostCenter": "b", ESCALATION_BLOCKED: "y"} | MARKED

    change = change_for(tags, RECORD)

    assert change.transition is Transition.RESOLVED and change.record is RecordChange.DELETE
    assert set(change.remove) == {VIOLATION, VIOLATION_SINCE, ESCALATION_BLOCKED}


def test_violation_tags_without_a_record_are_forged_and_removed_when_the_ami_is_compliant():
    tags = {"Owner": "a", "CostCenter": "b", VIOLATION_SINCE: "2026-11-20T08:00:00Z"}

    change = change_for(tags, None)

    assert change.transition is Transition.COMPLIANT and change.remove == (VIOLATION_SINCE,)
    assert change.forged == {VIOLATION_SINCE: "2026-11-20T08:00:00Z"}
    assert not change.newsworthy


# --- CreateTags / DeleteTags requests -------------------------------------------------------------------


def test_only_ami_ids_are_read_when_resources_mix_types():
    params = {
        "resourcesSet": {
            "items": [
                {"resourceId": "vol-0f9e1b2c3d4e5f6a7"},
                {"resourceId": "ami-0123456789abcdef0"},
                {"resourceId": "snap-0123456789abcdef0"},
                {"resourceId": "ami-0123456789abcdef0"},
                {"resourceId": "ami-XXXXXXXX"},
                {"resourceId": 42},
                "garbage",
            ]
        },
        "tagSet": {"items": [{"key": "Owner", "value": "ana"}, {"value": "no key"}]},
    }

    call = read_tag_call(params, image_id_pattern=IMAGE_ID)

    assert call.image_ids == ("ami-0123456789abcdef0",)
    assert call.resource_count == 7
    assert call.keys == ("Owner",)


def test_a_thousand_resources_are_read_when_one_call_names_them():
    ids = [f"ami-{index:017x}" for index in range(1000)]
    params = {"resourcesSet": {"items": [{"resourceId": i} for i in ids]}, "tagSet": {"items": [{"key": "Owner"}]}}

    assert read_tag_call(params, image_id_pattern=IMAGE_ID).image_ids == tuple(ids)


@pytest.mark.parametrize(
    "params",
    [{}, {"resourcesSet": "ami-0123456789abcdef0"}, {"resourcesSet": {"items": {"resourceId": "x"}}}],
    ids=["absent", "a-string", "items-not-a-list"],
)
def test_tag_call_is_malformed_when_resources_set_has_no_item_list(params):
    assert read_tag_call(params, image_id_pattern=IMAGE_ID).malformed


def test_tag_keys_are_none_when_delete_tags_names_no_tags():
    params = {"resourcesSet": {"items": [{"resourceId": "ami-0123456789abcdef0"}]}}

    call = read_tag_call(params, image_id_pattern=IMAGE_ID)

    assert call.keys is None and touches_policy(call.keys, DEFAULT_RULES)


@pytest.mark.parametrize(
    ("keys", "relevant"),
    [(("Name",), False), (("Name", "Owner"), True), (("amiguard:violation",), True), (("Team",), True), ((), True)],
)
def test_tag_change_touches_policy_when_it_names_a_watched_key(keys, relevant):
    assert touches_policy(keys, DEFAULT_RULES, ["Team"]) is relevant


# --- escalation -----------------------------------------------------------------------------------------


def image(**overrides):
    values = {
        "image_id": "ami-0123456789abcdef0",
        "region": "us-east-1",
        "owner_id": "123456789012",
        "tags": {VIOLATION: "missing:Owner", VIOLATION_SINCE: "2026-11-23T11:00:00Z"},
    } | overrides
    return Image(**values)


OVERDUE_SINCE = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("escalation", "overrides", "since", "in_use", "step"),
    [
        (TagEscalation.DEPRECATE, {}, OVERDUE_SINCE, 0, Step.DEPRECATE),
        (TagEscalation.DEPRECATE, {"deprecation_time": "2026-11-25T00:00:00.000Z"}, OVERDUE_SINCE, 0, Step.DONE),
        (TagEscalation.DEPRECATE, {"deprecation_time": "2028-01-01T00:00:00.000Z"}, OVERDUE_SINCE, 0, Step.DEPRECATE),
        (TagEscalation.DISABLE, {}, OVERDUE_SINCE, 0, Step.DISABLE),
        (TagEscalation.DISABLE, {"state": "disabled"}, OVERDUE_SINCE, 0, Step.DONE),
        (TagEscalation.DEREGISTER, {}, OVERDUE_SINCE, 0, Step.DEREGISTER),
        (TagEscalation.DEREGISTER, {"deregistration_protection": True}, OVERDUE_SINCE, 0, Step.BLOCKED),
        (TagEscalation.DEREGISTER, {}, OVERDUE_SINCE, 2, Step.BLOCKED),
        (TagEscalation.NONE, {}, OVERDUE_SINCE, 0, Step.WAIT),
        (TagEscalation.DEREGISTER, {}, datetime(2026, 11, 24, 12, 0, tzinfo=UTC), 0, Step.WAIT),
        (TagEscalation.DEREGISTER, {}, None, 0, Step.WAIT),
        # the tag says 2020: only the record counts
        (TagEscalation.DEREGISTER, {"tags": {VIOLATION_SINCE: "2020-01-01T00:00:00Z"}}, NOW, 0, Step.WAIT),
    ],
    ids=[
        "deprecate",
        "already-deprecated",
        "deprecation-scheduled-far-away",
        "disable",
        "already-disabled",
        "deregister",
        "deregistration-protection",
        "instances-in-use",
        "escalation-off",
        "within-grace",
        "no-record",
        "forged-tag-ignored",
    ],
)
def test_escalation_step_is_decided_from_the_record_when_the_grace_period_is_over(
    escalation, overrides, since, in_use, step
):
    decision = decide_escalation(
        image(**overrides), since=since, escalation=escalation, grace_hours=72, now=NOW, instances_in_use=in_use
    )

    assert decision.step is step, decision.reason


def test_deprecation_is_set_in_the_next_whole_minute_when_escalating():
    at = deprecation_time(datetime(2026, 11, 26, 12, 0, 42, 500, tzinfo=UTC))

    assert at == datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    assert at - NOW <= timedelta(minutes=1)
