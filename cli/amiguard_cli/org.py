"""Organization-wide CLI runs (``scan --org``, ``backtest --org``): which accounts, a session in each through its
amiguard member role, and the accounts run in parallel, each one's failure its own.

The member roles (``/amiguard/amiguard-reader`` to read; ``amiguard-public-guard``, ``amiguard-tag-enforcer``,
``amiguard-dr-replicator`` to act) trust only the central stack's roles and require the ``SourceIdentity``
``amiguard``; run these commands with a central role's credentials from the delegated administrator account
(Organizations ``ListAccounts`` is delegated to it). A role that is missing or refuses is an error for that
account only.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from amiguard.aws.accounts import ROLE_PATH, AccountClients, MemberRoleUnavailable
from amiguard.aws.clients import ClientFactory
from amiguard.aws.errors import error_code

READER_ROLE = "amiguard-reader"
DEFAULT_ACCOUNT_CONCURRENCY = 8
OU_ID = "ou-"


@dataclass(frozen=True)
class Account:
    id: str
    name: str


def add_org_arguments(parser: argparse.ArgumentParser, *, verb: str, account_concurrency: int) -> None:
    """``--org`` and the options that narrow it, the same for every command that runs per account."""
    parser.add_argument("--org", action="store_true", help=f"{verb} every active account of the organization")
    parser.add_argument(
        "--ou", action="append", metavar="ou-…", help="with --org: only the accounts under this OU, at any depth"
    )
    parser.add_argument("--accounts", help="with --org: only these account ids (comma list)")
    parser.add_argument("--exclude-accounts", help="with --org: leave these account ids out (comma list)")
    parser.add_argument(
        "--role-name", default=READER_ROLE, help=f"with --org: the member role to read through ({ROLE_PATH} path)"
    )
    parser.add_argument(
        "--account-concurrency",
        type=int,
        default=account_concurrency,
        help=f"with --org: accounts in parallel (default: {account_concurrency})",
    )


def ids(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def is_active(account: dict[str, Any]) -> bool:
    """``State`` (ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED) where Organizations gives it, else ``Status``."""
    return str(account.get("State") or account.get("Status")) == "ACTIVE"


def _accounts_under(client: Any, parent: str) -> Iterator[dict[str, Any]]:
    """Every account under ``parent`` (an OU or the root), its child OUs' included, all pages."""
    pending = [parent]
    while pending:
        current = pending.pop()
        for page in client.get_paginator("list_accounts_for_parent").paginate(ParentId=current):
            yield from page["Accounts"]
        for page in client.get_paginator("list_organizational_units_for_parent").paginate(ParentId=current):
            pending.extend(unit["Id"] for unit in page["OrganizationalUnits"])


def active_accounts(
    session: Any, *, ous: Sequence[str] = (), only: Iterable[str] = (), exclude: Iterable[str] = ()
) -> list[Account]:
    """Every ACTIVE account of the organization, or of the ``ous`` (``only`` narrows, ``exclude`` leaves out)."""
    client = session.client("organizations")
    if ous:
        listed = [account for ou in ous for account in _accounts_under(client, ou)]
    else:
        listed = [account for page in client.get_paginator("list_accounts").paginate() for account in page["Accounts"]]
    wanted, unwanted = set(only), set(exclude)
    accounts = {
        str(account["Id"]): Account(str(account["Id"]), str(account.get("Name", "")))
        for account in listed
        if is_active(account)
    }
    return sorted(
        (a for a in accounts.values() if (not wanted or a.id in wanted) and a.id not in unwanted), key=lambda a: a.id
    )


def accounts_from_args(args: argparse.Namespace, session: Any) -> list[Account]:
    """The accounts ``--ou``, ``--accounts`` and ``--exclude-accounts`` select."""
    return active_accounts(
        session, ous=list(args.ou or ()), only=ids(args.accounts), exclude=ids(args.exclude_accounts)
    )


def member_sessions(session: Any, role_name: str, *, purpose: str) -> AccountClients:
    """Sessions through ``role/amiguard/<role_name>`` in any account, from ``session``'s credentials: the
    functions' own adapter (one AssumeRole per account per hour, refreshed by botocore)."""
    region = session.region_name or "us-east-1"
    return AccountClients(
        ClientFactory(session),
        function=purpose,
        organization=True,
        role_name=role_name,
        partition=session.get_partition_for_region(region),
        region=region,
    )


def assumed_session(members: AccountClients, account: str) -> boto3.Session:
    """``account``'s session with its role assumed now: a refusal raises STS's ``ClientError`` here, not at the
    first call of the scan."""
    made = members.session(account)
    credentials = made.get_credentials()
    try:
        if credentials is not None:
            credentials.get_frozen_credentials()
    except MemberRoleUnavailable as unavailable:
        cause = unavailable.__cause__
        if isinstance(cause, (ClientError, BotoCoreError)):
            raise cause from None
        raise
    return made


def member_session(session: Any, account: str, role_name: str, *, purpose: str) -> boto3.Session:
    """A session in ``account`` through ``role/amiguard/<role_name>`` (session ``amiguard-<purpose>``)."""
    return assumed_session(member_sessions(session, role_name, purpose=purpose), account)


def describe_refusal(error: Exception, account: str, role_name: str) -> str:
    """One line for a role that could not be assumed."""
    code = error_code(error) if isinstance(error, ClientError) else type(error).__name__
    return f"account {account}: cannot assume role{ROLE_PATH}{role_name} ({code}): {error}"


def for_each_account[T](accounts: Sequence[Account], work: Callable[[Account], T], concurrency: int) -> list[T]:
    """``work`` on every account, ``concurrency`` at a time, results in the accounts' order."""
    if not accounts:
        return []
    workers = max(1, min(concurrency, len(accounts)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="amiguard-org") as pool:
        return list(pool.map(work, accounts))


__all__ = [
    "Account",
    "BotoCoreError",
    "ClientError",
    "accounts_from_args",
    "active_accounts",
    "add_org_arguments",
    "assumed_session",
    "describe_refusal",
    "for_each_account",
    "ids",
    "member_session",
    "member_sessions",
]
