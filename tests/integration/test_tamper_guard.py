"""tamper_guard under the sandbox: real-shaped CloudTrail calls on amiguard's own rules, functions, roles and
trail, put on the bus and routed by template.yaml's rule; assertions on the alerts an SQS subscriber gets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import ACCOUNT, iam_user

ALICE = iam_user("alice")


def cloudtrail_call(
    source: str,
    event_name: str,
    request: dict[str, Any],
    *,
    identity: dict[str, Any] | None = None,
    region: str = "us-east-1",
    event_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An "AWS API Call via CloudTrail" event as EventBridge delivers it (management write event)."""
    record = {
        "eventVersion": "1.09",
        "userIdentity": identity or ALICE,
        "eventTime": "2026-11-30T09:12:44Z",
        "eventSource": f"{source}.amazonaws.com",
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-cli/2.15.30 md/Botocore#1.34.70",
        "requestParameters": request,
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": event_id or str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        **fields,
    }
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": f"aws.{source}",
        "account": ACCOUNT,
        "time": "2026-11-30T09:12:44Z",
        "region": region,
        "resources": [],
        "detail": record,
    }


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


def tampered(sb: Sandbox) -> list[dict[str, Any]]:
    return [alert.message for alert in sb.alerts() if alert.message["type"] == "amiguard-tampered"]


def test_disabling_the_sweepers_schedule_is_a_critical_alert_when_a_person_does_it(sandbox: Sandbox) -> None:
    # Given the sweeper's schedule rule, as the stack deployed it
    rule = sandbox.stack().ref("SweeperFunctionSweep")
    sandbox.internal_client("events").disable_rule(Name=rule)

    # When CloudTrail's record of that call reaches the bus
    sandbox.put_event(cloudtrail_call("events", "DisableRule", {"name": rule}))
    deliveries = sandbox.run()

    # Then tamper_guard alerted (the notifier posts the alert), critical, naming the rule and who did it
    assert sorted(d.function for d in deliveries) == ["notifier", "tamper_guard"]
    [alert] = tampered(sandbox)
    assert alert["severity"] == "critical"
    assert alert["evidence"]["resource_type"] == "rule"
    assert alert["evidence"]["resource"] == rule
    assert alert["actor"] == ALICE["arn"]


def test_throttling_public_guard_to_zero_is_a_critical_alert_when_named_by_arn(sandbox: Sandbox) -> None:
    function_arn = sandbox.stack().attributes["PublicGuardFunction.Arn"]

    sandbox.put_event(
        cloudtrail_call(
            "lambda",
            "PutFunctionConcurrency20171031",
            {"functionName": function_arn, "reservedConcurrentExecutions": 0},
        )
    )
    sandbox.run()

    [alert] = tampered(sandbox)
    assert alert["severity"] == "critical"
    assert alert["evidence"]["api"] == "PutFunctionConcurrency"
    assert alert["evidence"]["resource"] == sandbox.stack().ref("PublicGuardFunction")
    assert alert["evidence"]["request"]["reservedConcurrentExecutions"] == 0


def test_widening_a_role_of_amiguard_is_a_critical_alert_when_iam_reports_it(sandbox: Sandbox) -> None:
    role = sandbox.stack().ref("PublicGuardRole")

    sandbox.put_event(
        cloudtrail_call(
            "iam",
            "AttachRolePolicy",
            {"roleName": role, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        )
    )
    sandbox.run()

    [alert] = tampered(sandbox)
    assert (alert["severity"], alert["evidence"]["resource_type"], alert["region"]) == ("critical", "role", "us-east-1")


def test_stopping_the_trail_is_a_critical_alert_when_no_trail_is_named(sandbox: Sandbox) -> None:
    sandbox.put_event(cloudtrail_call("cloudtrail", "StopLogging", {"name": sandbox.trail_arn}))
    sandbox.run()

    [alert] = tampered(sandbox)
    assert alert["severity"] == "critical"
    assert alert["evidence"]["resource"] == "amiguard-sandbox-trail"


def test_another_trail_is_not_amiguards_when_the_trail_parameter_names_one(sandbox: Sandbox) -> None:
    sandbox.reconfigure(Trail="org-audit-trail")

    sandbox.put_event(cloudtrail_call("cloudtrail", "StopLogging", {"name": "team-scratch-trail"}))
    deliveries = sandbox.run()

    assert [d.result["reason"] for d in deliveries if d.result] == ["not-amiguard"]
    assert tampered(sandbox) == []


def test_a_lookalike_function_is_not_amiguards_when_its_name_only_resembles_one(sandbox: Sandbox) -> None:
    # Given a function someone named like amiguard's (anyone may choose a name)
    lookalike = "amiguard-PublicGuardFunction-copy"

    sandbox.put_event(cloudtrail_call("lambda", "DeleteFunction20150331", {"functionName": lookalike}))
    deliveries = sandbox.run()

    assert [d.function for d in deliveries] == ["tamper_guard"]
    assert tampered(sandbox) == []


def test_a_stack_update_is_an_info_alert_when_cloudformation_made_the_call(sandbox: Sandbox) -> None:
    function = sandbox.stack().ref("TagEnforcerFunction")
    deployer = iam_user("deployer") | {"invokedBy": "cloudformation.amazonaws.com"}

    sandbox.put_event(
        cloudtrail_call(
            "lambda",
            "UpdateFunctionConfiguration20150331v2",
            {"functionName": function, "timeout": 60},
            identity=deployer,
            sourceIPAddress="cloudformation.amazonaws.com",
            userAgent="cloudformation.amazonaws.com",
        )
    )
    sandbox.run()

    [alert] = tampered(sandbox)
    assert alert["severity"] == "info"
    assert alert["evidence"]["deploy"] is True


def test_the_same_call_alerts_once_when_eventbridge_delivers_it_twice(sandbox: Sandbox) -> None:
    event = cloudtrail_call(
        "events",
        "RemoveTargets",
        {"rule": sandbox.stack().ref("PublicGuardFunctionSharingChanged"), "ids": ["public_guard"]},
    )

    sandbox.put_event(event)
    sandbox.put_event(event)
    sandbox.run()

    assert len(tampered(sandbox)) == 1


def test_a_failed_call_reaches_no_function_when_cloudtrail_records_an_error(sandbox: Sandbox) -> None:
    rule = sandbox.stack().ref("SweeperFunctionSweep")

    sandbox.put_event(cloudtrail_call("events", "DeleteRule", {"name": rule}, errorCode="AccessDeniedException"))

    assert sandbox.run() == []
