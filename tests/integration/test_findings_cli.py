"""``amiguard findings`` reads the ledger: filters, newest first, table on a terminal, JSON otherwise."""

from __future__ import annotations

import argparse
import io
import json
from datetime import timedelta

import pytest

from amiguard.aws.ledger import DynamoLedger
from amiguard.models.findings import FindingType, Severity
from amiguard_cli.findings import parse_since, print_table, select
from amiguard_cli.main import main
from amiguard_cli.sandbox.account import Sandbox
from tests.factories import a_finding

from .test_ledger import NOW, dynamodb  # noqa: F401 - the fixture

IMAGE = "ami-0123456789abcdef0"


@pytest.fixture
def ledger(dynamodb):  # noqa: F811
    ledger = DynamoLedger(dynamodb, "ledger", clock=lambda: NOW)
    ledger.record(a_finding(event_time=NOW - timedelta(hours=30)))  # too old for 24 h
    ledger.record(
        a_finding(
            event_time=NOW - timedelta(hours=3),
            type=FindingType.MISSING_TAGS,
            severity=Severity.MEDIUM,
            evidence={"missing": ["Owner"]},
        )
    )
    ledger.record(a_finding(event_time=NOW - timedelta(hours=1), image_id="ami-0fedcba9876543210"))
    return ledger


def test_last_24_hours_newest_first_when_no_option_is_given(ledger: DynamoLedger) -> None:
    entries = select(ledger, since=timedelta(hours=24), image=None, region="us-east-1", severity=None, now=NOW)

    assert [(e.finding.image_id, e.finding.type.value) for e in entries] == [
        ("ami-0fedcba9876543210", "public-share"),
        (IMAGE, "missing-tags"),
    ]


def test_only_that_severity_and_worse_when_severity_is_given(ledger: DynamoLedger) -> None:
    entries = select(ledger, since=timedelta(hours=24), image=None, region="us-east-1", severity=Severity.HIGH, now=NOW)

    assert [e.finding.severity for e in entries] == [Severity.CRITICAL]


def test_whole_history_of_one_ami_when_image_is_given(ledger: DynamoLedger) -> None:
    entries = select(ledger, since=timedelta(hours=1), image=IMAGE, region="us-east-1", severity=None, now=NOW)

    assert [e.finding.type.value for e in entries] == ["missing-tags", "public-share"]


@pytest.mark.parametrize(
    ("text", "expected"), [("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("90m", timedelta(minutes=90))]
)
def test_duration_is_understood_when_since_is_given(text: str, expected: timedelta) -> None:
    assert parse_since(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "24", "-1h", "1y"])
def test_clear_error_when_since_is_not_a_duration(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_since(text)


def test_table_names_what_happened_to_each_alert_when_printed(ledger: DynamoLedger) -> None:
    entries = select(ledger, since=timedelta(days=2), image=None, region="us-east-1", severity=None, now=NOW)
    out = io.StringIO()

    print_table(entries, out, width=250)

    text = out.getvalue()
    assert "amiguard findings (3)" in text and "public-share" in text and "missing-tags" in text
    assert "pending (not alerted yet)" in text  # recorded, never confirmed as sent


def test_json_is_printed_when_output_is_not_a_terminal(capsys) -> None:
    with Sandbox(parameters={"Mode": "audit"}) as sb:
        DynamoLedger(sb.internal_client("dynamodb"), sb.ledger_table).record(a_finding(event_time=None))

        code = main(["findings", "--table", sb.ledger_table, "--since", "1h"])

    assert code == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["image_id"] == IMAGE and row["alerted"] is False
