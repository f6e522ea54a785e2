"""``amiguard backtest --org``: LookupEvents in every active account, through each one's amiguard-reader role.

moto holds the organization and answers AssumeRole with credentials of the member account (MOTO_ACCOUNT_ID is
never set: it would override them); it implements no LookupEvents, so that call is replaced by one that reports
which account's credentials asked (LookupEvents itself is covered with Stubber in test_backtest_history).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from amiguard_cli import org
from amiguard_cli.backtest import command
from amiguard_cli.history import History
from amiguard_cli.sandbox.cfn import event_routes, load_template
from tests.samples import ROOT

ROUTES = event_routes(load_template(ROOT / "template.yaml"))
WINDOW = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


@pytest.fixture
def organization(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[boto3.Session, list[str]]]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        organizations = session.client("organizations")
        organizations.create_organization(FeatureSet="ALL")
        members = [
            organizations.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"][
                "AccountId"
            ]
            for name in ("prod", "dev")
        ]
        yield session, members


def _who_asked(client: Any, *, region: str, **_: Any) -> History:
    """Stands in for LookupEvents: one record naming the account whose credentials the client holds."""
    credentials = client._request_signer._credentials
    identity = boto3.client(
        "sts",
        region_name=region,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
    ).get_caller_identity()
    return History(records=[{"eventName": "Asked", "recipientAccountId": identity["Account"], "arn": identity["Arn"]}])


def _args(**overrides: Any) -> argparse.Namespace:
    defaults = {"regions": None, "all_regions": False, "ou": None, "accounts": None, "exclude_accounts": None}
    return argparse.Namespace(**(defaults | {"role_name": "amiguard-reader", "account_concurrency": 4} | overrides))


def test_every_active_account_is_read_through_its_reader_role_when_run_for_the_organization(
    organization: tuple[boto3.Session, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, members = organization
    monkeypatch.setattr(command, "lookup_events", _who_asked)

    history = command.org_history(_args(), session, ROUTES, *WINDOW)

    asked = {record["recipientAccountId"]: record["arn"] for record in history.records}
    assert set(members) <= set(asked) and len(asked) == 3  # the management account is read like any member
    assert all("assumed-role/amiguard-reader/amiguard-backtest" in arn for arn in asked.values())


def test_only_the_named_accounts_are_read_when_accounts_are_given(
    organization: tuple[boto3.Session, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, members = organization
    monkeypatch.setattr(command, "lookup_events", _who_asked)

    history = command.org_history(
        _args(accounts=",".join(members), exclude_accounts=members[1]), session, ROUTES, *WINDOW
    )

    assert [record["recipientAccountId"] for record in history.records] == [members[0]]


def test_refused_role_is_an_error_for_that_account_only_when_the_others_are_read(
    organization: tuple[boto3.Session, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, members = organization
    real = org.member_session

    def refusing(session: Any, account: str, role_name: str, *, purpose: str) -> Any:
        if account == members[0]:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no role"}}, "AssumeRole")
        return real(session, account, role_name, purpose=purpose)

    monkeypatch.setattr(command, "lookup_events", _who_asked)
    monkeypatch.setattr(org, "member_session", refusing)

    history = command.org_history(_args(), session, ROUTES, *WINDOW)

    assert [error.source for error in history.errors] == [members[0]]
    assert "AccessDenied" in history.errors[0].message and "role/amiguard/amiguard-reader" in history.errors[0].message
    assert members[1] in {record["recipientAccountId"] for record in history.records}
