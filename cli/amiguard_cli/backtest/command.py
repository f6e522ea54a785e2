"""``amiguard backtest``: what amiguard would have revoked, tagged and copied over past CloudTrail history.

History comes from CloudTrail LookupEvents (management events of the last 90 days, per region; ``--since``, or
``--start``/``--end``) or from files (``--file``: CloudTrail log files as S3 delivers them, ``.json`` or
``.json.gz``, folders of them, EventBridge events or bare records). Each record goes through template.yaml's
routing and the functions' own policy, from the events alone (the AMIs may be gone). Settings come from the same
``AMIGUARD_*`` variables as the stack; ``--trusted-principals`` and ``--required-tags`` override them for
what-if runs. Exit codes as ``scan``: 0 nothing to do, 1 it would have acted, 2 an error and nothing to do (a
region that refuses or a file that cannot be read is named; the rest is still evaluated).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from amiguard.models.events import CLOUDTRAIL_DETAIL_TYPE, CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE
from amiguard.models.settings import REGION, SettingsError, load_settings
from amiguard_cli import org
from amiguard_cli.backtest.decide import Backtest, Result, WouldDo
from amiguard_cli.console import HelpFormatter, description, fail
from amiguard_cli.history import (
    LOOKUP_RETENTION_DAYS,
    History,
    SourceError,
    lookup_events,
    read_files,
)
from amiguard_cli.org import (
    DEFAULT_ACCOUNT_CONCURRENCY,
    accounts_from_args,
    add_org_arguments,
    describe_refusal,
    for_each_account,
)
from amiguard_cli.sandbox.cfn import Route, event_routes, load_template

EXIT_CLEAN, EXIT_WOULD_ACT, EXIT_ERROR = 0, 1, 2
FORMATS = ("table", "json", "csv", "html")
COLUMNS = ("time", "account", "region", "actor", "event", "resource", "finding", "severity", "action")
_DURATION = re.compile(r"^(?P<count>\d+)(?P<unit>[mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
# Paced at the API's own limit, a ThrottlingException is rare (another caller in the account): standard retries.
LOOKUP_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=5, read_timeout=30)


class UsageError(ValueError):
    """An option that cannot work; said in one line, exit 2."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``backtest`` on the CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "backtest",
        help="what amiguard would have done over past CloudTrail history (exit 0 nothing, 1 would act, 2 error)",
        description=description(__doc__),
        formatter_class=HelpFormatter,
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--since", default=None, help="how far back LookupEvents reads: 30d, 12h, 90m (default 30d)")
    when.add_argument("--start", help="ISO 8601 start of the history (with --end, default now)")
    parser.add_argument("--end", help="ISO 8601 end of the history (default: now)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--regions", help="comma list of regions (default: the profile's region)")
    where.add_argument("--all-regions", action="store_true", help="every region enabled for the account")
    parser.add_argument(
        "--file",
        dest="files",
        action="append",
        type=Path,
        metavar="TRAIL.json[.gz]",
        help="read history from this file or folder instead of LookupEvents (repeatable)",
    )
    parser.add_argument("--profile", help="AWS named profile to use")
    add_org_arguments(parser, verb="read", account_concurrency=DEFAULT_ACCOUNT_CONCURRENCY)
    parser.add_argument(
        "--trusted-principals", help="what if these were trusted (overrides AMIGUARD_TRUSTED_PRINCIPALS)"
    )
    parser.add_argument("--required-tags", help="what if these tags were required (overrides AMIGUARD_REQUIRED_TAGS)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="report format (default: table)")
    parser.add_argument("--output", help="write the report to this file instead of standard output")
    parser.set_defaults(run=run)
    return parser


# --- time window --------------------------------------------------------------------------------------


def parse_window(args: argparse.Namespace, now: datetime) -> tuple[datetime, datetime]:
    """The history's [start, end): ``--since`` back from now, or ``--start``/``--end``; at most 90 days back."""
    end = _instant(args.end, "--end") if args.end else now
    if args.start:
        start = _instant(args.start, "--start")
    else:
        match = _DURATION.match(args.since or "30d")
        if not match:
            raise UsageError(f"--since {args.since!r}: give a number and m, h or d (30d, 12h, 90m)")
        start = end - timedelta(**{_UNITS[match["unit"]]: int(match["count"])})
    if start >= end:
        raise UsageError("the history's start is not before its end")
    oldest = now - timedelta(days=LOOKUP_RETENTION_DAYS)
    if not args.files and start < oldest:
        start = oldest  # LookupEvents holds 90 days; older history is in the trail's S3 files (--file)
    return start, end


def _instant(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- history ------------------------------------------------------------------------------------------


# CloudTrail records both as management events, so LookupEvents returns both (it takes exact names only: a rule's
# prefix pattern, tamper_guard's Lambda calls, is matched in trail files but cannot be looked up).
CLOUDTRAIL_DETAIL_TYPES = frozenset({CLOUDTRAIL_DETAIL_TYPE, CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE})


def routed_event_names(routes: list[Route]) -> list[str]:
    """Every CloudTrail eventName the template's rules route (what LookupEvents is asked for, one by one)."""
    names: set[str] = set()
    for route in routes:
        value = (route.pattern.get("detail") or {}).get("eventName")
        detail_types = set(route.pattern.get("detail-type") or ())
        if detail_types and detail_types <= CLOUDTRAIL_DETAIL_TYPES and isinstance(value, list):
            names.update(name for name in value if isinstance(name, str))
    return sorted(names)


OnPage = Callable[[str, int], None]


@contextmanager
def lookup_progress() -> Iterator[OnPage | None]:
    """A progress line on a terminal (pages and events read so far); nothing when standard error is not one."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=Console(stderr=True)
    ) as progress:
        task = progress.add_task("LookupEvents", total=None)
        counts = Counter[str]()

        def on_page(name: str, events: int) -> None:
            counts["pages"] += 1
            counts["events"] += events
            progress.update(
                task, description=f"LookupEvents {name}: {counts['pages']} pages, {counts['events']} events"
            )

        yield on_page


def lookup_history(
    args: argparse.Namespace,
    session: Any,
    routes: list[Route],
    start: datetime,
    end: datetime,
    on_page: OnPage | None = None,
) -> History:
    """LookupEvents in each region (regions in parallel, each region paced at its own 2 requests per second)."""
    home = session.region_name or "us-east-1"
    history = History()
    regions = _regions(args, session, home, history)
    names = routed_event_names(routes)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(regions)))) as pool:
        futures = [
            pool.submit(
                lookup_events,
                session.client("cloudtrail", region_name=region, config=LOOKUP_CONFIG),
                region=region,
                event_names=names,
                start=start,
                end=end,
                on_page=on_page,
            )
            for region in regions
        ]
        for future in futures:
            history.extend(future.result())
    return history


def org_history(
    args: argparse.Namespace,
    session: Any,
    routes: list[Route],
    start: datetime,
    end: datetime,
    on_page: OnPage | None = None,
) -> History:
    """LookupEvents in every active account through its reader role, accounts in parallel (each account and region
    has its own LookupEvents limit, so each gets its own bucket). A role that refuses is that account's error."""
    history = History()

    def one(account: org.Account) -> History:
        try:
            member = org.member_session(session, account.id, args.role_name, purpose="backtest")
        except (ClientError, BotoCoreError) as error:
            return History(errors=[SourceError(account.id, describe_refusal(error, account.id, args.role_name))])
        return lookup_history(args, member, routes, start, end, on_page)

    for result in for_each_account(accounts_from_args(args, session), one, args.account_concurrency):
        history.extend(result)
    return history


def _regions(args: argparse.Namespace, session: Any, home: str, history: History) -> list[str]:
    if args.all_regions:
        from amiguard.aws.regions import enabled_regions

        return enabled_regions(session.client("ec2", region_name=home))
    if not args.regions:
        return [home]
    regions = []
    for region in dict.fromkeys(part.strip() for part in args.regions.split(",") if part.strip()):
        if REGION.match(region):
            regions.append(region)
        else:
            history.errors.append(SourceError(region, f"{region!r} is not an AWS region name"))
    return regions


# --- report -------------------------------------------------------------------------------------------


def summary(result: Result) -> dict[str, Any]:
    return {
        "records": result.records,
        "decisions": len(result.decisions),
        "by_finding": dict(Counter(d.finding.value for d in result.decisions).most_common()),
        "by_actor": dict(Counter(d.actor or "unknown" for d in result.decisions).most_common()),
        "skipped": dict(result.skipped.most_common()),
    }


def render_json(result: Result, errors: list[SourceError]) -> str:
    document = {
        "decisions": [decision.as_row() for decision in result.decisions],
        "summary": summary(result),
        "errors": [{"source": error.source, "message": error.message} for error in errors],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_csv(result: Result) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((*COLUMNS, "summary"))
    for decision in result.decisions:
        row = decision.as_row()
        writer.writerow([row[column] or "" for column in (*COLUMNS, "summary")])
    return buffer.getvalue()


def render_table(
    result: Result, errors: list[SourceError], out: IO[str], *, color: bool, width: int | None = None
) -> None:
    """What amiguard would have done, then counts by finding and actor; fits 80 columns (:mod:`..tables`)."""
    from rich.console import Console
    from rich.text import Text

    from amiguard_cli.tables import add_id_column, add_text_column, narrow_table, severity_text, stacked

    if width is None and not color:
        width = 160
    console = Console(file=out, force_terminal=color, no_color=not color, width=width)
    if result.decisions:
        table = narrow_table(f"amiguard backtest: {len(result.decisions)} decision(s)")
        table.add_column("when (UTC), where", no_wrap=True)
        add_text_column(table, "actor, event")
        add_id_column(table, "resource")
        add_text_column(table, "finding, action")
        for decision in result.decisions:
            moment = decision.time
            table.add_row(
                stacked(
                    f"{moment:%Y-%m-%d}" if moment else "",
                    f"{moment:%H:%M:%S}" if moment else "",
                    decision.account,
                    Text(decision.region, style="dim"),
                ),
                # The user or session name (the "by actor" table and the JSON output have the whole ARN).
                stacked((decision.actor or "").rsplit("/", 1)[-1], Text(decision.event, style="dim")),
                decision.resource,
                stacked(severity_text(decision.severity.value), decision.finding.value, f"→ {decision.action.value}"),
            )
        console.print(table)
        facts = summary(result)
        for title, counts in (("by finding", facts["by_finding"]), ("by actor", facts["by_actor"])):
            totals = narrow_table(title, separated=False)
            add_text_column(totals, title.removeprefix("by "))
            totals.add_column("count", justify="right", no_wrap=True)
            for name, count in counts.items():
                totals.add_row(name, str(count))
            console.print(totals)
    for error in errors:
        console.print(f"could not read {error.source}: {error.message}")
    console.print(summary_line(result, errors))


def summary_line(result: Result, errors: list[SourceError]) -> str:
    acted = ", ".join(f"{count} {name}" for name, count in summary(result)["by_finding"].items()) or "nothing to do"
    parts = [f"{result.records} record(s)", acted]
    if errors:
        parts.append(f"{len(errors)} source(s) could not be read")
    return "; ".join(parts) + f" (exit {exit_code(result, errors)})"


def exit_code(result: Result, errors: list[SourceError]) -> int:
    if result.decisions:
        return EXIT_WOULD_ACT
    return EXIT_ERROR if errors else EXIT_CLEAN


def render_html(result: Result, errors: list[SourceError]) -> str:
    from amiguard_cli.report_html import render_html as page

    rows = [decision.as_row() for decision in result.decisions]
    columns = ("time", "region", "actor", "event", "resource", "finding", "action", "summary")
    problems = [f"{error.source}: {error.message}" for error in errors]
    return page("amiguard backtest", rows, columns, summary=summary_line(result, errors), errors=problems)


def write_report(result: Result, errors: list[SourceError], args: argparse.Namespace) -> None:
    if args.format == "json":
        text = render_json(result, errors)
    elif args.format == "html":
        text = render_html(result, errors)
    elif args.format == "csv":
        text = render_csv(result)
    else:
        buffer = io.StringIO()
        color = args.output is None and sys.stdout.isatty()
        render_table(result, errors, sys.stdout if color else buffer, color=color)
        text = "" if color else buffer.getvalue()
    if args.format != "table" or args.output:
        for error in errors:
            print(f"amiguard backtest: could not read {error.source}: {error.message}", file=sys.stderr)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        except OSError as error:
            raise UsageError(f"--output {args.output}: {error.strerror or error}") from None
        print(summary_line(result, errors), file=sys.stderr)
    elif text:
        sys.stdout.write(text)


# --- the command --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """``amiguard backtest``: returns the exit code."""
    try:
        return _run(args)
    except (UsageError, SettingsError) as error:
        return fail(str(error))
    except (ClientError, BotoCoreError) as error:
        return fail(f"cannot read CloudTrail: {error}")


def _run(args: argparse.Namespace) -> int:
    overrides = {
        name: value
        for name, value in (("trusted_principals", args.trusted_principals), ("required_tags", args.required_tags))
        if value is not None
    }
    settings = load_settings(**overrides)
    routes = event_routes(load_template(_template()))
    if args.files:
        if args.since or args.start or args.end or args.regions or args.all_regions or args.org:
            raise UsageError("--file reads the files' history: --since, --start, --end, --regions, --org do not apply")
        history = read_files(args.files)
    else:
        import boto3

        start, end = parse_window(args, datetime.now(UTC))
        try:
            session = boto3.Session(profile_name=args.profile) if args.profile else boto3.Session()
        except BotoCoreError as error:
            raise UsageError(str(error)) from None
        with lookup_progress() as on_page:
            read = org_history if args.org else lookup_history
            history = read(args, session, routes, start, end, on_page)
    result = Backtest(settings, routes).run(history.records)
    result.skipped.update(history.skipped)
    write_report(result, history.errors, args)
    return exit_code(result, history.errors)


def _template() -> Path:
    from amiguard_cli.sandbox.account import repo_root

    return repo_root() / "template.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amiguard")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["backtest", *(argv if argv is not None else sys.argv[1:])])
    return int(args.run(args))


__all__ = ["WouldDo", "add_parser", "main", "run"]
