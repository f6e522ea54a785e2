"""The findings, scan and backtest tables on an 80-column terminal: no line wider, every id whole."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from amiguard.aws.ledger import AlertState, LedgerEntry
from amiguard.models.findings import Action, Finding, FindingType, Severity
from amiguard.services.scan import ScanError, ScanReport
from amiguard_cli.backtest.command import render_table as render_backtest
from amiguard_cli.backtest.decide import Result, WouldDo
from amiguard_cli.findings import print_table
from amiguard_cli.history import SourceError
from amiguard_cli.scan import render_table as render_scan
from tests.factories import a_finding

WIDTH = 80
LONG_NAME = "payments-api-golden-base-image-with-a-name-far-longer-than-any-column-2026-11-26T09-30-00Z"
LONG_ACTOR = (
    "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef"
    "/someone.with.a.very.long.name@example.com"
)
IMAGES = ["ami-0123456789abcdef0", "ami-0fedcba9876543210"]
SNAPSHOTS = ["snap-0123456789abcdef0", "snap-0fedcba9876543210"]
ACCOUNTS = ["123456789012", "210987654321"]
NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def long_findings() -> list[Finding]:
    """Findings with the longest type names, long AMI names and actors, on AMIs and snapshots."""
    longest_types = sorted(FindingType, key=lambda t: len(t.value), reverse=True)[:2]
    return [
        a_finding(
            type=kind,
            severity=Severity.HIGH,
            image_id=image,
            snapshot_id=snapshot,
            image_name=LONG_NAME,
            actor=LONG_ACTOR,
            account=account,
            region="ap-southeast-2",
            action=Action.WOULD_REVOKE,
            summary=f"AMI {image} ({LONG_NAME}) was shared with 1 untrusted principal(s): {account}.",
        )
        for kind, image, snapshot, account in zip(longest_types, IMAGES, SNAPSHOTS, ACCOUNTS, strict=True)
    ]


def findings_table(out: io.StringIO) -> None:
    entries = [
        LedgerEntry(f, alerted=False, suppressed_duplicates=12, state=AlertState.SUPPRESSED) for f in long_findings()
    ]
    print_table(entries, out, width=WIDTH)


def scan_table(out: io.StringIO) -> None:
    report = ScanReport(account=ACCOUNTS[0], fix=False, started_at=NOW, findings=long_findings())
    report.errors.append(
        ScanError("ap-southeast-2", "launch-permissions", f"AccessDenied: {LONG_ACTOR} may not", image_id=IMAGES[0])
    )
    render_scan(report, out, color=False, width=WIDTH)


def backtest_table(out: io.StringIO) -> None:
    decisions = [
        WouldDo(
            time=NOW,
            account=f.account,
            region=f.region,
            actor=LONG_ACTOR,
            event="ModifySnapshotAttribute",
            event_id="1c5a3b2e-0000-4000-8000-000000000001",
            resource=resource,
            function="public_guard",
            finding=f.type,
            severity=f.severity,
            action=f.action,
            summary=f.summary,
        )
        for f, resource in zip(long_findings(), [IMAGES[0], SNAPSHOTS[1]], strict=True)
    ]
    result = Result(decisions=decisions, records=2, skipped=Counter())
    render_backtest(result, [SourceError(f"/tmp/{LONG_NAME}.json.gz", "not gzip")], out, color=False, width=WIDTH)


@pytest.mark.parametrize("render", [findings_table, scan_table, backtest_table], ids=["findings", "scan", "backtest"])
def test_table_fits_80_columns_with_every_id_whole_when_names_are_long(render: Callable[[io.StringIO], None]) -> None:
    # Given findings with long AMI names, principals and finding types
    out = io.StringIO()
    # When the table is rendered for an 80-column terminal
    render(out)
    # Then no line is wider, and every AMI, snapshot and account id is on one line, whole
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= WIDTH, text
    for resource_id in [*IMAGES, *SNAPSHOTS, *ACCOUNTS]:
        if render is scan_table and resource_id == ACCOUNTS[0]:
            continue  # the scanned account's own (named in the title); another account's is in its row
        if render is backtest_table and resource_id in (IMAGES[1], SNAPSHOTS[0]):
            continue  # each decision names one resource
        assert resource_id in text, f"{resource_id} split or cut:\n{text}"
