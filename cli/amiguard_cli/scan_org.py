"""``amiguard scan --org``: every active account of the organization (or of ``--ou``), each through its member role.

Accounts run in parallel (``--account-concurrency``), each account's regions in parallel as a one-account scan
does, each account-region paced by its own EC2 bucket (EC2's request-rate limit is per account and region), and
every HTTP attempt of the whole run counted against one process-wide cap (``--max-in-flight``). Reads go
through ``amiguard-reader`` (``--role-name``); ``--fix`` acts through the acting roles, each remedy through the
role of the function that applies it in the stack. One report: findings and errors carry the account, the
report names every account. Exit codes as for one account, over all of them: a role that is missing or refuses
is that account's error (2, unless findings somewhere make it 1), never a stop.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from amiguard.aws.accounts import AccountClients
from amiguard.aws.errors import error_code
from amiguard.aws.pacing import InFlightCap
from amiguard.models.settings import SettingsError, load_settings
from amiguard.services.scan import RegionResult, ScanError, ScanReport
from amiguard_cli.console import fail
from amiguard_cli.org import (
    Account,
    accounts_from_args,
    assumed_session,
    describe_refusal,
    for_each_account,
    member_sessions,
)
from amiguard_cli.scan import ORG_REGION_CONCURRENCY, ScanSessions, scan_account

# With --fix, each part of the scan acts through the member role of the function that does it in the stack.
ACTING_ROLES = {
    "images": "amiguard-public-guard",
    "tagging": "amiguard-tag-enforcer",
    "replication": "amiguard-dr-replicator",
}


def scan_organization(args: argparse.Namespace, session: boto3.Session) -> ScanReport | None:
    """Scan every selected account; ``None`` (after saying why) when the run cannot start at all."""
    try:
        load_settings()
    except SettingsError as bad_settings:
        fail(str(bad_settings))
        return None
    try:
        accounts = accounts_from_args(args, session)
    except (ClientError, BotoCoreError) as error:
        code = error_code(error) if isinstance(error, ClientError) else type(error).__name__
        fail(
            f"scan --org cannot list the organization's accounts ({code}): {error}; run it from the management "
            "account or the delegated administrator, with organizations:ListAccounts"
        )
        return None
    if not accounts:
        fail("scan --org: no active account matches --ou, --accounts and --exclude-accounts")
        return None
    started = datetime.now(UTC)
    args.concurrency = args.concurrency or ORG_REGION_CONCURRENCY
    cap = InFlightCap(max(1, args.max_in_flight))
    roles = dict(ACTING_ROLES) if args.fix else {"read": args.role_name}
    members = {part: member_sessions(session, role, purpose="scan") for part, role in roles.items()}
    home = session.region_name or "us-east-1"

    def one(account: Account) -> ScanReport:
        try:
            sessions = _sessions(members, account.id)
        except RoleRefused as refused:
            error = refused.error
            code = error_code(error) if isinstance(error, ClientError) else type(error).__name__
            message = describe_refusal(error, account.id, refused.role)
            return _account_failed(account.id, home, "assume-role", message, code)
        problems: list[str] = []
        report = scan_account(
            args, session, account=account.id, sessions=sessions, cap=cap, on_fail=problems.append, progress_bar=False
        )
        if report is None:
            return _account_failed(account.id, home, "start", f"account {account.id}: {'; '.join(problems)}", "")
        for region in report.regions:
            region.account = account.id
        report.errors = [replace(error, account=account.id) for error in report.errors]
        return report

    reports = for_each_account(accounts, one, args.account_concurrency)
    return merged(reports, accounts, fix=args.fix, started=started)


class RoleRefused(Exception):
    def __init__(self, role: str, error: ClientError | BotoCoreError) -> None:
        super().__init__(f"{role}: {error}")
        self.role, self.error = role, error


def _sessions(members: dict[str, AccountClients], account: str) -> ScanSessions:
    """The account's sessions, one AssumeRole per role (:class:`RoleRefused` says which role refused)."""
    made = {}
    for part, sessions in members.items():
        try:
            made[part] = assumed_session(sessions, account)
        except (ClientError, BotoCoreError) as error:
            raise RoleRefused(sessions.role_name, error) from error
    if "read" in made:
        return ScanSessions.one(made["read"])
    return ScanSessions(images=made["images"], tagging=made["tagging"], replication=made["replication"])


def _account_failed(account: str, home: str, stage: str, message: str, code: str) -> ScanReport:
    now = datetime.now(UTC)
    report = ScanReport(account=account, fix=False, started_at=now, finished_at=now)
    report.regions.append(RegionResult(home, account=account))  # not listed: the account was not scanned
    report.errors.append(ScanError(home, stage, message, code, account=account))
    return report


def merged(reports: list[ScanReport], accounts: list[Account], *, fix: bool, started: datetime) -> ScanReport:
    """One report over every account (``account`` names the run; ``account_names`` every account scanned)."""
    report = ScanReport(
        account=f"organization ({len(accounts)} accounts)",
        fix=fix,
        started_at=started,
        account_names={account.id: account.name for account in accounts},
    )
    for part in reports:
        report.regions.extend(part.regions)
        report.findings.extend(part.findings)
        report.errors.extend(part.errors)
    report.finished_at = datetime.now(UTC)
    return report
