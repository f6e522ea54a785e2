"""notifier: deliver each alert on the SNS topic to Slack as a Block Kit message, within seconds.

Triggered by the alert topic (an SNS subscription; one record per invocation). The message is the finding
JSON every function publishes; it is rendered by :mod:`amiguard.slack.blocks` and posted to the webhook
whose URL is in Secrets Manager. No secret configured: Slack is off, and the outcome says so. A message
that is not a finding is dropped with the reason (logged and counted). A Slack that does not take the
message, or a secret that is missing or holds no URL, raises: Lambda retries, and the dead-letter queue
keeps the message for a redrive once the cause is fixed.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError

from amiguard.models.findings import Finding
from amiguard.models.notifications import SnsEvent
from amiguard.policy.screening import Drop
from amiguard.services.outcome import Outcome, Status
from amiguard.slack.blocks import finding_blocks


class SlackPort(Protocol):
    def post(self, payload: dict[str, Any]) -> None: ...


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": str(error)}
    where = ".".join(str(part) for part in first["loc"]) or "message"
    return f"{where}: {first['msg']}"


class Notifier:
    """Renders findings from SNS and posts them to Slack."""

    def __init__(self, *, slack: SlackPort | None) -> None:
        self._slack = slack

    def handle(self, raw_event: dict[str, Any]) -> Outcome:
        try:
            event = SnsEvent.model_validate(raw_event)
        except ValidationError as error:
            return Outcome.dropped(Drop("malformed-event", f"not an SNS notification: {_first_problem(error)}"))
        first_id = event.records[0].sns.message_id
        if self._slack is None:
            return Outcome.clean("slack-off", "no Slack webhook secret is configured", event_id=first_id)
        delivered, rejected = 0, []
        for record in event.records:
            try:
                finding = Finding.model_validate_json(record.sns.message)
            except ValidationError as error:
                rejected.append(f"{record.sns.message_id}: {_first_problem(error)}")
                continue
            self._slack.post(finding_blocks(finding))  # raises: Lambda retries, then the DLQ keeps it
            delivered += 1
        if not delivered:
            return Outcome.dropped(Drop("malformed-alert", "not a finding: " + "; ".join(rejected)), first_id)
        detail = f"posted {delivered} alert(s) to Slack"
        if rejected:
            detail += f"; {len(rejected)} message(s) were not findings: " + "; ".join(rejected)
        return Outcome(Status.ACTED, "delivered", detail, event_id=first_id)

    def publish(self, outcome: Outcome) -> None:
        """The notifier is the end of the alert path: it publishes nothing."""
