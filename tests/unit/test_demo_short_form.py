"""The demo's short form: one line per event, derived from what was delivered and found, whatever act ran."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from amiguard_cli.demo.oneline import group_events, summarize, what_amiguard_did, what_happened
from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Alert, Delivery
from tests.factories import a_finding

HOME_ACCOUNT = "123456789012"
MEMBER = "210987654321"


def api_call(event_id: str, name: str, who: str, *, account: str = HOME_ACCOUNT, **params: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": account,
        "region": "us-east-1",
        "detail": {
            "eventName": name,
            "awsRegion": "us-east-1",
            "userIdentity": {"type": "IAMUser", "userName": who, "arn": f"arn:aws:iam::{account}:user/{who}"},
            "requestParameters": params,
        },
    }


def delivered(function: str, event: dict[str, Any], status: str, reason: str, *findings: dict[str, Any]) -> Delivery:
    result = {"status": status, "reason": reason, "detail": "", "findings": list(findings)}
    return Delivery(function, f"{function}.Rule", "us-east-1", event, result=result)


def short_form(*deliveries: Delivery, alerts: tuple[Alert, ...] = ()) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    timeline = Timeline(None, console, full=False, home=(HOME_ACCOUNT, "us-east-1"))
    for delivery in deliveries:
        timeline.delivery(delivery)
    for alert in alerts:
        timeline.alert(alert)
    timeline.finish()
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def test_an_event_reaching_two_functions_is_one_line_when_shown_short() -> None:
    # Given one CreateImage delivered to tag_enforcer (a finding) and to dr_replicator (dropped)
    event = api_call("e-1", "CreateImage", "dev-bob", imageId="ami-0123456789abcdef0")
    finding = a_finding(type="missing-tags", severity="medium", action="tagged", exposure_seconds=None).to_message()
    deliveries = [
        delivered("tag_enforcer", event, "acted", "missing-tags", finding),
        delivered("dr_replicator", event, "dropped", "replication-off"),
    ]
    # When
    [line] = group_events(deliveries)
    # Then
    assert what_happened(line, account=HOME_ACCOUNT, home="us-east-1") == "dev-bob CreateImage ami-0123456789abcdef0"
    assert what_amiguard_did(line) == "tagged missing-tags"
    assert line.severity == "medium"


def test_a_later_acts_finding_renders_without_demo_code_when_its_event_is_from_a_member_account() -> None:
    # Given a finding type and action the demo has never heard of, on an event from another account
    event = api_call("e-2", "ModifyImageAttribute", "partner-ops", account=MEMBER, imageId="ami-0fedcba9876543210")
    finding = {**a_finding(account=MEMBER).to_message(), "type": "exception-applied", "action": "excepted"}
    # When
    text = short_form(delivered("public_guard", event, "acted", "exception-applied", finding))
    # Then its line says who did what where, and what amiguard did
    assert (
        "CRIT partner-ops ModifyImageAttribute ami-0fedcba9876543210 in 210987654321 → excepted exception-applied"
        in text
    )
    assert "exception-applied" in text.split("What amiguard found and did", 1)[1]  # and the summary counts it


def test_own_calls_and_alert_deliveries_are_counted_not_listed_when_shown_short() -> None:
    # Given amiguard's own CreateTags (dropped by both functions) and the notifier's SNS delivery
    own = api_call("e-3", "CreateTags", "amiguard-tag_enforcer", resourcesSet={"items": [{"resourceId": "ami-1"}]})
    sns = {"Records": [{"Sns": {"MessageId": "m-1", "Subject": "[amiguard] CRITICAL public-share"}}]}
    # When
    text = short_form(
        delivered("tag_enforcer", own, "dropped", "amiguard-own-action"),
        delivered("dr_replicator", own, "dropped", "amiguard-own-action"),
        delivered("notifier", sns, "clean", "slack-off"),
    )
    # Then
    assert "CreateTags" not in text and "slack-off" not in text
    assert "1 own call ignored, 1 alert to the notifier" in text


def test_a_failed_delivery_is_shown_when_shown_short() -> None:
    event = api_call("e-4", "DeregisterImage", "dev-bob", imageId="ami-0123456789abcdef0")
    failed = Delivery("dr_replicator", "r", "us-east-1", event, error="ReplicationRetry: CopyImage failed")

    text = short_form(failed)

    assert "FAIL dev-bob DeregisterImage ami-0123456789abcdef0 → FAILED in dr_replicator" in text


def test_the_most_severe_alert_is_the_example_when_shown_short() -> None:
    # Given an info alert, then a critical one
    info = a_finding(type="replication-started", severity="info", action="copied").to_message()
    critical = a_finding().to_message()
    alerts = (
        Alert("[amiguard] INFO replication-started", info, {"severity": "info"}),
        Alert("[amiguard] CRITICAL public-share", critical, {"severity": "critical"}),
    )
    # When
    text = short_form(alerts=alerts)
    # Then one Slack message and one SNS message, both of the critical alert
    assert "2 alerts on the SNS topic" in text
    assert text.count("Subject: ") == 1 and "Subject: [amiguard] CRITICAL public-share" in text
    assert "Critical · public share" in text and "replication started" not in text.lower()


def test_summary_counts_each_type_with_its_actions_and_longest_exposure_when_summarized() -> None:
    findings = [
        a_finding(exposure_seconds=2.4).to_message(),
        a_finding(exposure_seconds=75.0).to_message(),
        a_finding(type="missing-tags", severity="medium", action="none", exposure_seconds=None).to_message(),
    ]

    rows = summarize(findings)

    assert [(r.type, r.severity, r.count, r.actions, r.exposure) for r in rows] == [
        ("public-share", "critical", 2, "revoked \u00d72", "1 min 15 s"),
        ("missing-tags", "medium", 1, "reported", "\u2014"),
    ]


def test_findings_of_one_event_are_grouped_by_action_when_a_sweep_finds_several() -> None:
    # Given one scheduled sweep that found two types it reported and one it fixed
    sweep = {"id": "e-5", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    found = [
        a_finding(type="missing-tags", severity="medium", action="none").to_message(),
        a_finding(type="missing-tags", severity="medium", action="none").to_message(),
        a_finding(type="forged-amiguard-tag", severity="high", action="none").to_message(),
        a_finding(type="untrusted-share", severity="high", action="revoked").to_message(),
    ]
    # When
    [line] = group_events([delivered("sweeper", sweep, "acted", "findings", *found)])
    # Then
    assert what_happened(line) == "schedule: sweeper"
    assert what_amiguard_did(line) == "reported missing-tags \u00d72, forged-amiguard-tag; revoked untrusted-share"
