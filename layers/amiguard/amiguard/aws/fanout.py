"""Organization-mode sweeps at the edge: the organization's accounts, the sweeper's queue, a member's forwarders."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from amiguard.aws.clients import ClientFactory
from amiguard.aws.errors import error_code
from amiguard.policy.coverage import RuleState


def is_active(account: Mapping[str, Any]) -> bool:
    """``State`` (ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED) where Organizations gives it, else ``Status``."""
    return str(account.get("State") or account.get("Status")) == "ACTIVE"


class OrganizationAccounts:
    """Organizations ``ListAccounts`` (every page), from the management account or the delegated administrator."""

    def __init__(self, clients: ClientFactory) -> None:
        self._organizations = clients.client("organizations")

    def active_accounts(self) -> list[tuple[str, str]]:
        pages = self._organizations.get_paginator("list_accounts").paginate()
        listed = [account for page in pages for account in page["Accounts"] if is_active(account)]
        return sorted((str(account["Id"]), str(account.get("Name", ""))) for account in listed)


class SqsSweepQueue:
    """The stack's SweepQueue: one message per account to sweep."""

    def __init__(self, sqs: Any, url: str) -> None:
        self._sqs = sqs
        self._url = url

    def send(self, body: str) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=body)


class ForwardingRules:
    """A member account's forwarding rules on its default bus, read with ``DescribeRule`` (one call per rule)."""

    def __init__(self, events: Callable[[str], Any]) -> None:
        self._events = events

    def rules(self, region: str, names: Sequence[str]) -> dict[str, RuleState]:
        found: dict[str, RuleState] = {}
        for name in names:
            try:
                rule = self._events(region).describe_rule(Name=name)
            except ClientError as error:
                if error_code(error) != "ResourceNotFoundException":
                    raise
                found[name] = RuleState(exists=False)
                continue
            found[name] = RuleState(exists=True, enabled=rule.get("State") == "ENABLED", targets=1)
        return found
