"""Ledger keys: one partition per AMI, one index partition per UTC day, time-sortable sort keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from amiguard.aws.ledger import finding_pk, finding_sk, iso
from amiguard.models.findings import Action
from tests.factories import a_finding


def test_image_partition_when_finding_names_an_ami() -> None:
    assert finding_pk(a_finding()) == "IMAGE#us-east-1#ami-0123456789abcdef0"


def test_account_partition_names_the_account_when_finding_is_account_level() -> None:
    finding = a_finding(image_id=None)
    assert finding_pk(finding) == f"ACCOUNT#{finding.account}#us-east-1"


def test_account_partitions_differ_when_two_accounts_have_the_same_account_level_finding() -> None:
    # Organization mode: image block public access off in two members is two rows, two alerts
    assert finding_pk(a_finding(image_id=None, account="111122223333")) != finding_pk(
        a_finding(image_id=None, account="444455556666")
    )


def test_sort_key_is_event_time_fingerprint_and_event_id_when_event_known() -> None:
    finding = a_finding()

    assert finding_sk(finding) == f"FINDING#2026-11-26T09:30:00.000000Z#{finding.fingerprint}#{finding.event_id}"


def test_two_events_in_the_same_second_get_two_rows_when_their_ids_differ() -> None:
    first = a_finding()
    second = a_finding(event_id="another-event")

    assert finding_sk(first) != finding_sk(second)


def test_redelivered_event_gets_the_same_sort_key_when_detected_later() -> None:
    first = a_finding()
    again = a_finding(detected_at=first.detected_at + timedelta(minutes=5))

    assert finding_sk(first) == finding_sk(again)


def test_times_sort_lexically_when_zones_and_precision_differ() -> None:
    moments = [
        datetime(2026, 11, 26, 9, 30, 0, 5, tzinfo=UTC),
        datetime(2026, 11, 26, 11, 29, 59, tzinfo=timezone(timedelta(hours=2))),  # 09:29:59Z
        datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
    ]

    assert sorted(moments, key=iso) == sorted(moments)


def test_a_changed_outcome_gets_its_own_row_and_alert_id_when_the_problem_is_the_same() -> None:
    # Given a public AMI the sweep could not fix, then fixed in a retry of the same sweep
    not_fixed = a_finding(action=Action.NONE, fix_failed=True)
    fixed = a_finding(action=Action.REVOKED)

    # Then it is one problem, but the fix is news: another row, another alert (and dedup) identity
    assert not_fixed.problem_fingerprint == fixed.problem_fingerprint
    assert finding_sk(not_fixed) != finding_sk(fixed)


def test_the_same_problem_is_one_identity_when_only_the_action_differs() -> None:
    # Given an AMI tag_enforcer marked, then a sweep that finds it already marked
    marked = a_finding(action=Action.TAGGED)
    found_again = a_finding(action=Action.NONE)

    # Then it is a repeat: one row per event, one alert
    assert marked.fingerprint == found_again.fingerprint
