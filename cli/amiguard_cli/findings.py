"""``amiguard findings``: read the ledger. A rich table on a terminal, JSON lines of findings otherwise.

    amiguard findings                          # the last 24 h
    amiguard findings --since 7d --severity high
    amiguard findings --image ami-0123456789abcdef0 --region eu-west-1
    amiguard findings --format json | jq ...

The table comes from ``--table``, else ``AMIGUARD_LEDGER_TABLE`` (the stack output ``LedgerTableName``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from amiguard.aws.ledger import DynamoLedger, LedgerEntry
from amiguard.models.findings import Severity
from amiguard_cli.console import HelpFormatter, fail

SEVERITY_ORDER = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO]
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> timedelta:
    """``90m``, ``24h``, ``7d``, ``2w`` as a duration; anything else is an argparse error."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 24h, 7d or 2w")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def at_least(severity: Severity) -> set[Severity]:
    """``high`` → {critical, high}: the severity asked for and everything worse."""
    return set(SEVERITY_ORDER[: SEVERITY_ORDER.index(severity) + 1])


def add_parser(commands: Any) -> None:
    """Register ``findings`` on the CLI's subparsers."""
    parser = commands.add_parser(
        "findings", help="list findings and actions from the ledger (DynamoDB)", formatter_class=HelpFormatter
    )
    parser.add_argument("--since", type=parse_since, default=timedelta(hours=24), help="how far back (default 24h)")
    parser.add_argument("--image", help="every finding about this AMI (any age), instead of --since")
    parser.add_argument(
        "--severity",
        type=Severity,
        choices=list(Severity),
        metavar="{critical,high,medium,low,info}",
        help="this severity and worse (high: critical and high)",
    )
    parser.add_argument("--format", choices=["table", "json"], help="default: table on a terminal, else json")
    parser.add_argument("--table", help="ledger table name (default: AMIGUARD_LEDGER_TABLE)")
    parser.add_argument("--region", help="the stack's region (and the AMI's, with --image)")
    parser.add_argument("--profile", help="AWS profile to read with")
    parser.set_defaults(run=run)


def select(
    ledger: DynamoLedger,
    *,
    since: timedelta,
    image: str | None,
    region: str,
    severity: Severity | None,
    now: datetime | None = None,
) -> list[LedgerEntry]:
    """The entries the options ask for, newest first."""
    if image:
        entries = ledger.findings_for_image(region, image)
    else:
        entries = ledger.findings_since((now or datetime.now(UTC)) - since, now)
    if severity:
        wanted = at_least(severity)
        entries = [entry for entry in entries if entry.finding.severity in wanted]
    return sorted(entries, key=lambda entry: entry.finding.event_time or entry.finding.detected_at, reverse=True)


def as_json(entries: Sequence[LedgerEntry]) -> str:
    return json.dumps(
        [
            entry.finding.to_message()
            | {
                "alerted": entry.alerted,
                "alert": entry.state.value,
                "suppressed_duplicates": entry.suppressed_duplicates,
            }
            for entry in entries
        ],
        ensure_ascii=False,
        indent=2,
    )


def print_table(entries: Sequence[LedgerEntry], out: TextIO | None = None, width: int | None = None) -> None:
    """Newest first; fits 80 columns (see :mod:`amiguard_cli.tables`): ids whole, names cut, text folded."""
    from rich.console import Console
    from rich.text import Text

    from amiguard_cli.tables import add_id_column, add_text_column, narrow_table, severity_text, stacked

    table = narrow_table(f"amiguard findings ({len(entries)})")
    table.add_column("when (UTC)", no_wrap=True)
    add_text_column(table, "finding")
    add_id_column(table, "resource")
    add_text_column(table, "actor")
    add_text_column(table, "action, alert")
    for entry in entries:
        finding = entry.finding
        moment = finding.event_time or finding.detected_at
        alert = {"sent": "sent", "pending": "pending (not alerted yet)"}.get(
            entry.state.value, "suppressed (duplicate)"
        )
        if entry.suppressed_duplicates:
            alert += f", {entry.suppressed_duplicates} duplicate(s) since"
        table.add_row(
            f"{moment:%Y-%m-%d}\n{moment:%H:%M:%S}",
            stacked(severity_text(finding.severity.value), finding.type.value),
            stacked(
                finding.image_id or ("" if finding.snapshot_id else "account"),
                finding.snapshot_id,
                finding.image_name,
                finding.account,
                Text(finding.region, style="dim"),
            ),
            # The user or session name: who it was, in a few characters (the JSON output has the whole ARN).
            (finding.actor or "").rsplit(":", 1)[-1].rsplit("/", 1)[-1],
            stacked(finding.action.value, Text(alert, style="dim")),
        )
    Console(file=out, width=width).print(table)


def run(args: argparse.Namespace) -> int:
    import boto3

    from amiguard.models.settings import load_settings

    table_name = args.table or load_settings().ledger_table
    if not table_name:
        fail("no ledger table: pass --table (the stack output LedgerTableName)")
        return 2
    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    region = session.region_name or "us-east-1"
    ledger = DynamoLedger(session.client("dynamodb"), table_name)
    entries = select(ledger, since=args.since, image=args.image, region=region, severity=args.severity)
    output = args.format or ("table" if sys.stdout.isatty() else "json")
    if output == "json":
        print(as_json(entries))
    else:
        print_table(entries)
    return 0
