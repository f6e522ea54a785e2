"""amiguard's violation records under moto: the first start holds, a cleared record frees the AMI, one Query reads
a region."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from amiguard.aws.violations import DynamoViolations
from tests.scan_support import ACCOUNT, HOME, create_ledger, moto_session

IMAGE = "ami-0123456789abcdef0"
FIRST = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoViolations]:
    for session in moto_session(monkeypatch, {}):
        yield create_ledger(session)


def test_first_recorded_start_holds_when_a_second_invocation_records_the_same_violation(
    ledger: DynamoViolations,
) -> None:
    # Given
    ledger.record(ACCOUNT, HOME, IMAGE, "missing:Owner", FIRST)
    # When a later (or concurrent) invocation records it again
    held = ledger.record(ACCOUNT, HOME, IMAGE, "missing:Owner,CostCenter", FIRST + timedelta(hours=5))
    # Then
    assert (held.since, held.violation) == (FIRST, "missing:Owner")
    assert ledger.records(ACCOUNT, HOME, [IMAGE])[IMAGE] == held


def test_cleared_record_frees_the_ami_for_a_new_grace_period_when_it_violates_again(
    ledger: DynamoViolations,
) -> None:
    # Given a violation fixed
    ledger.record(ACCOUNT, HOME, IMAGE, "missing:Owner", FIRST)
    ledger.clear(ACCOUNT, HOME, IMAGE)
    assert ledger.records(ACCOUNT, HOME, [IMAGE]) == {}
    ledger.update(ACCOUNT, HOME, IMAGE, "missing:CostCenter")  # a late update does not resurrect it
    assert ledger.in_region(ACCOUNT, HOME) == {}
    # When it violates again
    again = ledger.record(ACCOUNT, HOME, IMAGE, "missing:CostCenter", FIRST + timedelta(days=2))
    # Then its start is the new one
    assert again.since == FIRST + timedelta(days=2)


def test_every_record_of_a_region_is_read_and_only_that_region_when_listed(ledger: DynamoViolations) -> None:
    # Given 12 AMIs in violation here (more than one event's per-AMI queries) and one elsewhere
    ids = [f"ami-{index:017x}" for index in range(12)]
    for image_id in ids:
        ledger.record(ACCOUNT, HOME, image_id, "missing:Owner", FIRST)
    ledger.record(ACCOUNT, "eu-west-1", "ami-0fffffffffffffff0", "missing:Owner", FIRST)
    # When / Then
    assert sorted(ledger.in_region(ACCOUNT, HOME)) == ids
    assert sorted(ledger.records(ACCOUNT, HOME, [*ids, "ami-0fffffffffffffff0"])) == ids
    assert list(ledger.records(ACCOUNT, "eu-west-1", ["ami-0fffffffffffffff0"])) == ["ami-0fffffffffffffff0"]
