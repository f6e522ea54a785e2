"""``amiguard scan``: what is already wrong with the AMIs this account owns (and, with ``--fix``, mend it).

Read-only by default; ``--fix`` applies what the stack does in enforce mode. Exit codes (a CI gate):
0 the scan was complete and found nothing, 1 findings (even if part of the scan failed: what was found
is certain), 2 nothing found but something could not be checked (a region that does not exist, is not
enabled or denies access; an AMI whose permissions could not be read), or the scan could not start.
Settings come from the same ``AMIGUARD_*`` variables as the stack (trusted principals, allow-list, ...).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from amiguard.aws.clients import RETRY_CONFIG, ClientFactory
from amiguard.aws.images import Ec2Images
from amiguard.aws.pacing import (
    EC2_READ_BURST,
    EC2_READ_REFILL_PER_SECOND,
    PACED_RETRY_CONFIG,
    InFlightCap,
    PacedClients,
    RegionPacer,
)
from amiguard.aws.regions import ENABLED, enabled_regions, region_opt_in_status
from amiguard.aws.replicas import DynamoReplicaLedger
from amiguard.aws.replication import Ec2Replication
from amiguard.aws.tags import Ec2Tagging
from amiguard.aws.violations import DynamoViolations
from amiguard.models.settings import REGION, SettingsError, load_settings
from amiguard.policy.checks import ReplicaRemedyPort
from amiguard.services.dr_replicator import LedgerRecordedReplication
from amiguard.services.scan import (
    DEFAULT_CONCURRENCY,
    EXIT_ERROR,
    RegionResult,
    ScanError,
    Scanner,
    ScanReport,
    describe_error,
)
from amiguard_cli.console import HelpFormatter, description, fail
from amiguard_cli.org import add_org_arguments

# Accounts scanned at once by --org, and the requests in flight over all of them: 32 accounts of 2 regions at
# EC2's 20 reads per second each, ~50 ms a call, keep ~64 in flight; the cap leaves room for bursts.
DEFAULT_ACCOUNT_CONCURRENCY = 32
DEFAULT_MAX_IN_FLIGHT = 128
# Per account-region with --org: 3 calls in flight keep up with EC2's 20 per second at up to 150 ms a call, and
# hundreds of threads more (8 per account-region) would cost a third more CPU in switching.
ORG_REGION_CONCURRENCY = 3

FORMATS = ("table", "json", "csv", "html")
ORG_CSV_COLUMNS = ("account", "account_name")  # first, in a scan of several accounts
CSV_COLUMNS = (
    "severity",
    "type",
    "region",
    "image_id",
    "image_name",
    "snapshot_id",
    "action",
    "summary",
    "evidence",
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``scan`` on the CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "scan",
        help="check every AMI this account owns (exit 0 clean, 1 findings, 2 error)",
        description=description(__doc__),
        formatter_class=HelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--regions", help="comma list of regions (default: the profile's region)")
    where.add_argument("--all-regions", action="store_true", help="every region enabled for the account")
    parser.add_argument("--profile", help="AWS named profile to use")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="no AWS account needed: scan an embedded one (moto) seeded with planted problems of every kind",
    )
    parser.add_argument("--fix", action="store_true", help="apply the enforce-mode remedies (revoke shares, ...)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="report format (default: table)")
    parser.add_argument("--output", help="write the report to this file instead of standard output")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help=f"per-region parallel calls (default: {DEFAULT_CONCURRENCY}; with --org {ORG_REGION_CONCURRENCY}, "
        "since each account-region is held to its bucket's 20 calls per second and threads cost CPU)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=EC2_READ_REFILL_PER_SECOND,
        help="EC2 read calls per second per region after the burst, to stay inside EC2's request-rate limit "
        f"(default: {EC2_READ_REFILL_PER_SECOND:g}, what EC2 documents; lower it to leave room for other callers; "
        "0: no pacing, adaptive retries only)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=EC2_READ_BURST,
        help=f"EC2's read-call burst per region (default: {EC2_READ_BURST})",
    )
    parser.add_argument(
        "--pace-from-start",
        action="store_true",
        help="pace from the first call, assuming EC2's bucket is full (default: from EC2's first throttle)",
    )
    add_org_arguments(parser, verb="scan", account_concurrency=DEFAULT_ACCOUNT_CONCURRENCY)
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=DEFAULT_MAX_IN_FLIGHT,
        help=f"with --org: AWS requests in flight at once over all accounts (default: {DEFAULT_MAX_IN_FLIGHT})",
    )
    parser.set_defaults(run=run)
    return parser


# --- regions ----------------------------------------------------------------------------------------------


def resolve_regions(args: argparse.Namespace, clients: ClientFactory, home: str) -> tuple[list[str], list[ScanError]]:
    """The regions to scan, and a clear error for each asked-for region that cannot be scanned."""
    if args.all_regions:
        return enabled_regions(clients.ec2(home)), []  # a failure here is fatal: there is nothing to scan
    if not args.regions:
        return [home], []
    requested = list(dict.fromkeys(region.strip() for region in args.regions.split(",") if region.strip()))
    errors = [
        ScanError(region, "region", f"{region!r} is not an AWS region name")
        for region in requested
        if not REGION.match(region)
    ]
    requested = [region for region in requested if REGION.match(region)]
    try:
        status = region_opt_in_status(clients.ec2(home))
    except (ClientError, BotoCoreError):
        return requested, errors  # cannot tell: each region's own calls will say what is wrong
    regions = []
    for region in requested:
        if region not in status:
            errors.append(ScanError(region, "region", f"{region} does not exist in this partition", "InvalidRegion"))
        elif status[region] not in ENABLED:
            errors.append(
                ScanError(
                    region,
                    "region",
                    f"{region} is not enabled for this account ({status[region]}): enable it or leave it out",
                    "OptInRequired",
                )
            )
        else:
            regions.append(region)
    return regions, errors


# --- progress ---------------------------------------------------------------------------------------------


class BarProgress:
    """A rich progress bar on standard error, one line per region."""

    def __init__(self, regions: Sequence[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks = {region: self._bar.add_task(region, total=None) for region in regions}
        self._lock = threading.Lock()

    def __enter__(self) -> BarProgress:
        self._bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._bar.stop()

    def region_listed(self, region: str, images: int) -> None:
        with self._lock:
            self._bar.update(self._tasks[region], total=images)

    def image_done(self, region: str) -> None:
        with self._lock:
            self._bar.advance(self._tasks[region])

    def region_failed(self, region: str, message: str) -> None:
        with self._lock:
            self._bar.update(self._tasks[region], total=0, description=f"{region} (failed)")


# --- rendering --------------------------------------------------------------------------------------------


def render_json(report: ScanReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render_csv(report: ScanReport) -> str:
    """One row per finding (errors go to standard error: a CSV has one shape)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    org = bool(report.account_names)
    writer.writerow((*ORG_CSV_COLUMNS, *CSV_COLUMNS) if org else CSV_COLUMNS)
    for finding in report.findings:
        where = [finding.account, report.account_names.get(finding.account, "")] if org else []
        writer.writerow(
            [
                *where,
                finding.severity.value,
                finding.type.value,
                finding.region,
                finding.image_id or "",
                finding.image_name or "",
                finding.snapshot_id or "",
                finding.action.value,
                finding.summary,
                json.dumps(finding.evidence, sort_keys=True, default=str),
            ]
        )
    return buffer.getvalue()


_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def render_table(report: ScanReport, out: IO[str], *, color: bool, width: int | None = None) -> None:
    """Findings most severe first, then what could not be checked; fits 80 columns (:mod:`amiguard_cli.tables`)."""
    from rich.console import Console
    from rich.text import Text

    from amiguard_cli.tables import add_id_column, add_text_column, narrow_table, severity_text, stacked

    if width is None and not color:
        width = 160
    console = Console(file=out, force_terminal=color, no_color=not color, width=width)
    if report.findings:
        table = narrow_table(f"amiguard scan of {report.account}: {len(report.findings)} finding(s)")
        add_text_column(table, "finding")
        add_id_column(table, "resource")
        table.add_column("action", no_wrap=True)
        add_text_column(table, "summary", ratio=2)
        ordered = sorted(
            report.findings,
            key=lambda f: (_SEVERITY_ORDER.get(f.severity.value, 9), f.account, f.type.value, f.region, f.image_id),
        )
        for finding in ordered:
            table.add_row(
                stacked(severity_text(finding.severity.value), finding.type.value),
                stacked(
                    finding.image_id,
                    finding.snapshot_id,
                    # another account's (a scan of an organization names every account, with its name)
                    account_label(report, finding.account)
                    if report.account_names or finding.account != report.account
                    else None,
                    Text(finding.region, style="dim"),
                ),
                finding.action.value,
                finding.summary,
            )
        console.print(table)
    if report.errors:
        errors = narrow_table("could not check")
        add_id_column(errors, "resource")
        add_text_column(errors, "stage")
        add_text_column(errors, "problem", ratio=3)
        for error in report.errors:
            account = account_label(report, error.account) if report.account_names and error.account else None
            resource = stacked(error.image_id or error.snapshot_id, account, Text(error.region, style="dim"))
            errors.add_row(resource, error.stage, error.message)
        console.print(errors)
    console.print(summary_line(report))


def account_label(report: ScanReport, account: str) -> str:
    """``123456789012 (prod)`` in a scan of several accounts."""
    name = report.account_names.get(account, "")
    return f"{account} ({name})" if name else account


def summary_line(report: ScanReport) -> str:
    scanned = list(dict.fromkeys(region.region for region in report.regions if region.listed))
    vanished = sum(len(region.vanished) for region in report.regions)
    counts = ", ".join(f"{count} {kind}" for kind, count in report.counts().items()) or "no findings"
    where = f"{len(scanned)} region(s) ({', '.join(scanned) or 'none'})"
    if report.account_names:
        reached = len({region.account for region in report.regions if region.listed})
        where += f" of {reached}/{len(report.account_names)} account(s)"
    parts = [f"{report.images} AMI(s) in {where}", counts]
    if vanished:
        parts.append(f"{vanished} deregistered during the scan")
    if report.errors:
        parts.append(f"{len(report.errors)} problem(s) prevented a complete scan")
    if report.fix:
        parts.append("fixed" if report.findings else "nothing to fix")
    return "; ".join(parts) + f" (exit {report.exit_code})"


def render_html(report: ScanReport) -> str:
    from amiguard_cli.report_html import render_html as page

    rows = [
        {
            "severity": f.severity.value,
            "account": f.account,
            "account_name": report.account_names.get(f.account, ""),
            "type": f.type.value,
            "region": f.region,
            "image": f.image_id or "",
            "snapshot": f.snapshot_id or "",
            "action": f.action.value,
            "summary": f.summary,
        }
        for f in report.findings
    ]
    columns: tuple[str, ...] = ("type", "region", "image", "snapshot", "action", "summary")
    if report.account_names:
        columns = ("account", "account_name", *columns)
    errors = [
        f"{error.account + ' ' if error.account else ''}{error.region}: {error.message}" for error in report.errors
    ]
    return page(f"amiguard scan of {report.account}", rows, columns, summary=summary_line(report), errors=errors)


def write_report(report: ScanReport, args: argparse.Namespace) -> None:
    if args.format == "json":
        text = render_json(report)
    elif args.format == "html":
        text = render_html(report)
    elif args.format == "csv":
        text = render_csv(report)
        for error in report.errors:
            where = f"{error.account} {error.region}" if error.account else error.region
            print(f"amiguard scan: {where}: {error.message}", file=sys.stderr)
    else:
        buffer = io.StringIO()
        color = args.output is None and sys.stdout.isatty()
        render_table(report, buffer if not color else sys.stdout, color=color)
        text = "" if color else buffer.getvalue()
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        print(summary_line(report), file=sys.stderr)
    elif text:
        sys.stdout.write(text)


# --- the command ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """``amiguard scan``: returns the exit code."""
    org_only = [name for name in ("ou", "accounts", "exclude_accounts") if getattr(args, name, None)]
    if org_only and not args.org:
        fail(f"--{org_only[0].replace('_', '-')} narrows --org: add --org")
        return EXIT_ERROR
    if args.sandbox:
        if args.org:
            from amiguard_cli.sandbox.scan_org import run_org_in_sandbox

            return run_org_in_sandbox(args)
        from amiguard_cli.sandbox.scan import run_in_sandbox

        return run_in_sandbox(args, scan_account)
    try:
        session = boto3.Session(profile_name=args.profile) if args.profile else boto3.Session()
    except BotoCoreError as error:
        fail(f"scan cannot start: {error}")
        return EXIT_ERROR
    if args.org:
        from amiguard_cli.scan_org import scan_organization

        report = scan_organization(args, session)
    else:
        report = scan_account(args, session)
    if report is None:
        return EXIT_ERROR
    write_report(report, args)
    return report.exit_code


@dataclass(frozen=True)
class ScanSessions:
    """Whose credentials each part of a scan uses: one session for everything in the caller's own account; in a
    member account, the reader role, or with ``--fix`` the acting role of each remedy (public_guard's revokes
    shares and reads, tag_enforcer's marks tag violations, dr_replicator's copies and cleans up replicas)."""

    images: boto3.Session
    tagging: boto3.Session
    replication: boto3.Session

    @classmethod
    def one(cls, session: boto3.Session) -> ScanSessions:
        return cls(session, session, session)


def scan_account(
    args: argparse.Namespace,
    session: boto3.Session,
    *,
    account: str | None = None,
    sessions: ScanSessions | None = None,
    cap: InFlightCap | None = None,
    on_fail: Callable[[str], object] = fail,
    progress_bar: bool = True,
) -> ScanReport | None:
    """Scan with ``session``'s credentials as ``args`` say; ``None`` (after ``on_fail`` said why) when it cannot
    start. In a member ``account``, EC2 is read (and mended) through ``sessions``; the ledger stays ``session``'s."""
    try:
        settings = load_settings()
    except SettingsError as bad_settings:
        on_fail(str(bad_settings))
        return None
    where = sessions or ScanSessions.one(session)
    try:
        home = session.region_name or "us-east-1"
        # One bucket per region of this account (EC2's limit is per account and region), whoever's role calls.
        pacer = RegionPacer(burst=args.burst, rate=args.rate, armed=args.pace_from_start) if args.rate > 0 else None
        concurrency = args.concurrency or DEFAULT_CONCURRENCY
        config = scan_config(concurrency, paced=pacer is not None)
        clients = PacedClients(where.images, pacer=pacer, config=config, cap=cap)
        def clients_of(part: boto3.Session) -> PacedClients:
            return clients if part is where.images else PacedClients(part, pacer=pacer, config=config, cap=cap)

        tag_clients, copy_clients = clients_of(where.tagging), clients_of(where.replication)
        ledger_clients = clients if sessions is None else PacedClients(session, pacer=None, config=config, cap=cap)
        account = account or str(clients.client("sts", home).get_caller_identity()["Account"])
        regions, region_errors = resolve_regions(args, clients, home)
    except (ClientError, BotoCoreError) as error:
        _, message = describe_error(error, "the home region")
        on_fail(f"scan cannot start: {message}")
        return None

    show_bar = progress_bar and sys.stderr.isatty()
    progress = BarProgress(regions) if show_bar else None
    # With the stack's ledger (AMIGUARD_LEDGER_TABLE), replicas are the copies amiguard recorded, and --fix records
    # its copies there; without it, a replica is a copy its tag and EC2 agree on, never cleaned up by a tag alone.
    replicas = DynamoReplicaLedger(ledger_clients.dynamodb(), settings.ledger_table) if settings.ledger_table else None

    def replication(region: str) -> ReplicaRemedyPort:
        ec2 = Ec2Replication(copy_clients.ec2(region))
        return LedgerRecordedReplication(ec2, replicas) if replicas else ec2

    scanner = Scanner(
        settings=settings,
        images=lambda region: Ec2Images(clients.ec2(region)),
        replication=replication,
        replica_records=replicas,
        tagging=lambda region: Ec2Tagging(tag_clients.ec2(region)),
        # the stack's ledger (AMIGUARD_LEDGER_TABLE): without it tag violations are reported, never marked
        violations=(
            DynamoViolations(lambda: ledger_clients.dynamodb(home), settings.ledger_table)
            if settings.ledger_table
            else None
        ),
        account=account,
        fix=args.fix,
        concurrency=concurrency,
        progress=progress,
    )
    if progress:
        with progress:
            report = scanner.scan(regions)
    else:
        report = scanner.scan(regions)
    for refused in region_errors:
        report.regions.append(RegionResult(refused.region))
        report.errors.append(refused)
    return report


def scan_config(concurrency: int, *, paced: bool = False) -> Config:
    """The clients' retry config (standard when paced, else adaptive), with a connection pool as large as the
    per-region concurrency."""
    retries = PACED_RETRY_CONFIG if paced else RETRY_CONFIG
    return retries.merge(Config(max_pool_connections=max(10, concurrency + 2)))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m amiguard_cli.scan``: the scan alone (the ``amiguard`` CLI mounts it as ``amiguard scan``)."""
    parser = argparse.ArgumentParser(prog="amiguard")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["scan", *(argv if argv is not None else sys.argv[1:])])
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
