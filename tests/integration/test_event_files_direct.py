"""events/notifier/ and events/sweeper/: the events SNS and the schedule deliver, handled as deployed."""

from __future__ import annotations

import json
from pathlib import Path

from amiguard_cli.sandbox.account import Sandbox

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_notifier_event_file_is_handled_without_slack_when_no_webhook_is_configured(sandbox: Sandbox) -> None:
    event = json.loads((EVENTS / "notifier" / "public-share-alert.json").read_text())

    delivery = sandbox.invoke("notifier", event)

    assert delivery.error is None and delivery.result is not None


def test_sweeper_event_file_runs_a_sweep_when_delivered_by_the_schedule(sandbox: Sandbox) -> None:
    event = json.loads((EVENTS / "sweeper" / "daily-sweep.json").read_text())
    event["account"] = sandbox.account

    delivery = sandbox.invoke("sweeper", event)

    assert delivery.error is None and delivery.result is not None
    assert "sweep-summary" in [alert.message["type"] for alert in sandbox.alerts()]
