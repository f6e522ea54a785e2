"""The sweeper at organization scale: the schedule fans out one SQS message per account; each message sweeps one.

Triggered by the ``SweepSchedule`` rule in organization mode (``OrganizationId`` set): :class:`SweepDispatcher`
lists the organization's ACTIVE accounts (Organizations ``ListAccounts``, every page) and sends one
:class:`AccountSweep` per account to the stack's ``SweepQueue``. The same function, fed by that queue (batch
size 1, at most ``SweepConcurrency`` at once), sweeps the account the message names through its
``amiguard-sweeper`` member role (:mod:`amiguard.services.sweeper`, unchanged): every enabled region of that
account in parallel, each region behind its own EC2 bucket.

Lambda stops an invocation at 15 minutes. A sweep that reaches its deadline leaves the regions it could not
finish unchecked (``DeadlineNear``): the worker then sends a continuation for exactly those regions and the
message succeeds; a continuation that makes no progress (the same regions again, or more than
:data:`MAX_CONTINUATIONS`) fails, and SQS redelivers it until the dead-letter queue keeps it. A dispatch that
fails midway is retried whole: accounts queued twice are swept twice, and the sweep is idempotent (a finding
keeps the schedule event's id, so its alert is not repeated).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from amiguard.models.events import SCHEDULED_EVENT_DETAIL_TYPE
from amiguard.models.settings import ACCOUNT_ID, REGION
from amiguard.policy.screening import Drop, read_schedule
from amiguard.services.outcome import Outcome, Status
from amiguard.services.ports import OrganizationPort, SweepQueuePort

MAX_CONTINUATIONS = 3


@dataclass(frozen=True)
class AccountSweep:
    """One SQS message: sweep ``account`` (only ``regions`` when a continuation names them) for the schedule's
    event ``event_id`` at ``event_time``."""

    account: str
    name: str = ""
    event_id: str = ""
    event_time: str = ""
    regions: tuple[str, ...] = ()
    continuation: int = 0

    def body(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def parse(cls, body: str) -> AccountSweep:
        """The message, or ``ValueError`` saying what is wrong with it (anyone may send to a queue they can reach)."""
        try:
            raw = json.loads(body)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error.msg}") from error
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        account = str(raw.get("account") or "")
        if not ACCOUNT_ID.match(account):
            raise ValueError(f"account {account!r} is not a 12-digit account id")
        regions = raw.get("regions") or []
        if not isinstance(regions, list) or not all(isinstance(r, str) and REGION.match(r) for r in regions):
            raise ValueError(f"regions {regions!r} are not region names")
        continuation = raw.get("continuation") or 0
        if not isinstance(continuation, int) or continuation < 0:
            raise ValueError(f"continuation {continuation!r} is not a count")
        return cls(
            account=account,
            name=str(raw.get("name") or ""),
            event_id=str(raw.get("event_id") or ""),
            event_time=str(raw.get("event_time") or ""),
            regions=tuple(regions),
            continuation=continuation,
        )

    def schedule_event(self) -> dict[str, Any]:
        """The scheduled event this sweep answers, for the account (what :class:`~amiguard.services.sweeper.Sweeper`
        handles): its id and time name every finding, so a redelivered sweep re-alerts nothing."""
        return {
            "id": self.event_id,
            "detail-type": SCHEDULED_EVENT_DETAIL_TYPE,
            "source": "aws.events",
            "account": self.account,
            "time": self.event_time,
            "detail": {},
        }

    def continued(self, regions: Sequence[str]) -> AccountSweep | None:
        """The continuation for ``regions`` (what the deadline left), or ``None`` when another would not progress."""
        if not regions or self.continuation >= MAX_CONTINUATIONS or set(regions) == set(self.regions):
            return None
        return replace(self, regions=tuple(sorted(regions)), continuation=self.continuation + 1)


class SweepDispatcher:
    """On the schedule, in organization mode: one :class:`AccountSweep` per ACTIVE account on the sweep queue."""

    def __init__(self, *, organization: OrganizationPort, queue: SweepQueuePort) -> None:
        self._organization = organization
        self._queue = queue

    def handle(self, raw_event: dict[str, Any]) -> Outcome:
        event_id = str(raw_event.get("id") or "") or None
        if isinstance(schedule := read_schedule(raw_event), Drop):
            return Outcome.dropped(schedule, event_id)
        accounts = self._organization.active_accounts()  # a failure raises: Lambda retries the schedule
        for account, name in accounts:
            sweep = AccountSweep(account, name, event_id or "", str(raw_event.get("time") or ""))
            self._queue.send(sweep.body())
        if not accounts:
            return Outcome.clean("no-accounts", "the organization lists no ACTIVE account", event_id)
        return Outcome(Status.ACTED, "dispatched", f"{len(accounts)} account(s) queued for sweeping", event_id=event_id)

    def publish(self, outcome: Outcome) -> None:
        """Nothing to alert: each account's sweep alerts its own findings and summary."""
