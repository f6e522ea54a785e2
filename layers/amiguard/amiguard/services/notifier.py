"""notifier: deliver each alert on the SNS topic to Slack as a Block Kit message, within seconds.

Triggered by the alert topic (an SNS subscription; one record per invocation). The message is the finding
JSON every function publishes; it is rendered by :mod:`amiguard.slack.blocks` and posted to the webhook
whose URL is in Secrets Manager. No secret configured: Slack is off, and the outcome says so. A message
that is not a finding is dropped with the reason (logged and counted). A Slack that does not take the
message, or a secret that is missing or holds no URL, raises: Lambda retries, and the dead-letter queue
keeps the message for a redrive once the cause is fixed.

At most once to people: each alert's id (:func:`amiguard.aws.posted.alert_id`, rebuilt from the finding, not
read from the message) is claimed in the ledger before the post and settled after it, so a second copy of an
alert (SNS redelivery, a Publish retried after its answer was lost, a redrive) is skipped, not posted again.

A post whose answer never came (a read timeout: Slack had the whole request) is treated as **sent**, not
retried. slack_sdk does not retry it either. For the person on call a repeat is not harmless: the same
critical alert twice reads as the exposure happening twice, and a channel where alerts come in pairs teaches
people to skip the second of each. Slack posts an accepted webhook request whether or not its answer reaches
us, so the rare post lost this way is the smaller risk, and it is not silent: the outcome says
``posted-unconfirmed``, the ``SlackPostsUnconfirmed`` metric counts it (alarm on it), the alert itself is in
the ledger and on the topic for every other subscriber. A post that definitely failed (no connection, an
HTTP error answer) gives its claim back and raises: Lambda retries it.
"""

from __future__ import annotations

from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from amiguard.aws.posted import PostClaim, alert_id
from amiguard.models.findings import Finding
from amiguard.models.notifications import SnsEvent
from amiguard.observability import logger, metrics
from amiguard.policy.screening import Drop
from amiguard.services.outcome import Outcome, Status
from amiguard.slack.blocks import finding_blocks
from amiguard.slack.webhook import SlackPostUnconfirmed


class SlackPort(Protocol):
    def post(self, payload: dict[str, Any]) -> None: ...


class PostedPort(Protocol):
    """What the notifier keeps of its posts (:class:`amiguard.aws.posted.PostedAlerts`)."""

    def claim(self, alert: str) -> PostClaim | None: ...
    def confirm(self, claim: PostClaim, *, answered: bool = True) -> None: ...
    def release(self, claim: PostClaim) -> None: ...


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": str(error)}
    where = ".".join(str(part) for part in first["loc"]) or "message"
    return f"{where}: {first['msg']}"


class Notifier:
    """Renders findings from SNS and posts them to Slack."""

    def __init__(self, *, slack: SlackPort | None, posted: PostedPort | None = None) -> None:
        self._slack = slack
        self._posted = posted  # None (no ledger table): every copy is posted

    def handle(self, raw_event: dict[str, Any]) -> Outcome:
        try:
            event = SnsEvent.model_validate(raw_event)
        except ValidationError as error:
            return Outcome.dropped(Drop("malformed-event", f"not an SNS notification: {_first_problem(error)}"))
        first_id = event.records[0].sns.message_id
        if self._slack is None:
            return Outcome.clean("slack-off", "no Slack webhook secret is configured", event_id=first_id)
        delivered, repeats, unconfirmed, rejected = 0, 0, 0, []
        for record in event.records:
            try:
                finding = Finding.model_validate_json(record.sns.message)
            except ValidationError as error:
                rejected.append(f"{record.sns.message_id}: {_first_problem(error)}")
                continue
            posted = self._post_once(finding)
            if posted is None:
                repeats += 1
            elif posted:
                delivered += 1
            else:
                unconfirmed += 1
        if not delivered + repeats + unconfirmed:
            return Outcome.dropped(Drop("malformed-alert", "not a finding: " + "; ".join(rejected)), first_id)
        if not delivered + unconfirmed:
            return Outcome.clean("already-posted", f"{repeats} alert(s) were posted to Slack before", first_id)
        if not delivered:
            detail = f"{unconfirmed} post(s) sent to Slack with no answer: treated as sent, not repeated"
            return Outcome(Status.ACTED, "posted-unconfirmed", detail, event_id=first_id)
        detail = f"posted {delivered} alert(s) to Slack"
        if repeats:
            detail += f"; {repeats} already posted before"
        if rejected:
            detail += f"; {len(rejected)} message(s) were not findings: " + "; ".join(rejected)
        return Outcome(Status.ACTED, "delivered", detail, event_id=first_id)

    def _post_once(self, finding: Finding) -> bool | None:
        """Post unless posted before: True posted, False sent with no answer, None a repeat (skipped)."""
        assert self._slack is not None
        claim = self._posted.claim(alert_id(finding)) if self._posted else None
        if self._posted and claim is None:
            logger.info("alert already posted to Slack: this copy is skipped", extra={"alert_id": alert_id(finding)})
            metrics.add_metric(name="SlackRepeatsSkipped", unit=MetricUnit.Count, value=1)
            return None
        try:
            self._slack.post(finding_blocks(finding))
        except SlackPostUnconfirmed as error:
            extra = {"alert_id": alert_id(finding), "error": str(error)}
            logger.error("Slack post sent with no answer: treated as sent, not repeated", extra=extra)
            metrics.add_metric(name="SlackPostsUnconfirmed", unit=MetricUnit.Count, value=1)
            if self._posted and claim:
                self._posted.confirm(claim, answered=False)
            return False
        except Exception:
            if self._posted and claim:
                self._posted.release(claim)  # definitely not posted: Lambda's retry posts
            raise  # Lambda retries, then the failure queue keeps it
        if self._posted and claim:
            self._posted.confirm(claim)
        return True

    def publish(self, outcome: Outcome) -> None:
        """The notifier is the end of the alert path: it publishes nothing."""
