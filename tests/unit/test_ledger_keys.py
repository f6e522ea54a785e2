"""Ledger keys: one partition per AMI, one index partition per UTC day, time-sortable sort keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from amiguard.aws.ledger import finding_pk, finding_sk, iso
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
