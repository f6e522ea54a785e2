"""Organization-wide CLI runs (``backtest --org``): the active accounts, and a session in each through its
amiguard member role.

The member roles (``/amiguard/amiguard-reader`` to read) trust only the central stack's roles and require the
``SourceIdentity`` ``amiguard``; run these commands with a central role's credentials from the delegated
administrator account (Organizations ``ListAccounts`` is delegated to it). A role that is missing or refuses is
an error for that account only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from amiguard.aws.errors import error_code

ROLE_PATH = "/amiguard/"
SOURCE_IDENTITY = "amiguard"
SESSION_SECONDS = 3600


@dataclass(frozen=True)
class Account:
    id: str
    name: str


def active_accounts(session: Any, *, only: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[Account]:
    """Every ACTIVE account of the organization (``only`` narrows, ``exclude`` leaves out), by id."""
    client = session.client("organizations")
    wanted, unwanted = set(only), set(exclude)
    accounts = [
        Account(str(account["Id"]), str(account.get("Name", "")))
        for page in client.get_paginator("list_accounts").paginate()
        for account in page["Accounts"]
        if account.get("Status") == "ACTIVE"
    ]
    return sorted((a for a in accounts if (not wanted or a.id in wanted) and a.id not in unwanted), key=lambda a: a.id)


def member_session(session: Any, account: str, role_name: str, *, purpose: str) -> Any:
    """A session in ``account`` through ``role/amiguard/<role_name>`` (session ``amiguard-<purpose>``)."""
    partition = session.get_partition_for_region(session.region_name or "us-east-1")
    role_arn = f"arn:{partition}:iam::{account}:role{ROLE_PATH}{role_name}"
    credentials = session.client("sts").assume_role(
        RoleArn=role_arn,
        RoleSessionName=f"amiguard-{purpose}",
        SourceIdentity=SOURCE_IDENTITY,
        DurationSeconds=SESSION_SECONDS,
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=session.region_name,
    )


def describe_refusal(error: Exception, account: str, role_name: str) -> str:
    """One line for a role that could not be assumed."""
    code = error_code(error) if isinstance(error, ClientError) else type(error).__name__
    return f"account {account}: cannot assume role{ROLE_PATH}{role_name} ({code}): {error}"


__all__ = ["Account", "BotoCoreError", "ClientError", "active_accounts", "describe_refusal", "member_session"]
