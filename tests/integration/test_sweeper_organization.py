"""The sweeper at organization scale, in the sandbox's organization (the security account and two members).

The schedule fans out one message per ACTIVE account on the stack's SweepQueue; each message, delivered as
Lambda's SQS event source delivers it (one record, ReportBatchItemFailures), sweeps one account through its
``amiguard-sweeper`` member role, and reports every region holding AMIs whose forwarding rules are missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from amiguard.policy.coverage import FORWARDING_RULES
from amiguard_cli.sandbox.account import Sandbox

HOME = "us-east-1"
OUTSIDE = "ap-southeast-2"  # a member region the central stack does not run in
SCHEDULE = {
    "version": "0",
    "id": "sweep-tick-1",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "time": "2026-12-01T06:00:00Z",
    "region": HOME,
    "resources": [],
    "detail": {},
}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(organization=True) as sb:
        yield sb


def _tick(sb: Sandbox) -> dict[str, Any]:
    return SCHEDULE | {"account": sb.account}


def _queued(sb: Sandbox) -> list[dict[str, Any]]:
    """Every message on the SweepQueue, as the event source mapping receives them (then deleted)."""
    sqs = sb.internal_client("sqs")
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=sb.sweep_queue_url, MaxNumberOfMessages=10).get("Messages", []):
        messages.extend(batch)
        for message in batch:
            sqs.delete_message(QueueUrl=sb.sweep_queue_url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def _sqs_event(sb: Sandbox, message: dict[str, Any]) -> dict[str, Any]:
    arn = sb.internal_client("sqs").get_queue_attributes(QueueUrl=sb.sweep_queue_url, AttributeNames=["QueueArn"])
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764568800000"},
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn["Attributes"]["QueueArn"],
                "awsRegion": HOME,
            }
        ]
    }


def _message_for(sb: Sandbox, account: str) -> dict[str, Any]:
    sb.invoke("sweeper", _tick(sb))
    [message] = [m for m in _queued(sb) if json.loads(m["Body"])["account"] == account]
    return message


def _public_image(sb: Sandbox, account: str, region: str) -> str:
    ec2 = sb.internal_client("ec2", region, account=account)
    image = str(
        ec2.register_image(
            Name="golden",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
    )
    ec2.create_tags(Resources=[image], Tags=[{"Key": "Owner", "Value": "a"}, {"Key": "CostCenter", "Value": "1"}])
    ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    return image


def _forwarders(sb: Sandbox, account: str, region: str) -> None:
    """The member forwarder's rules (org/member-forwarder.yaml's names) in ``region``."""
    events = sb.internal_client("events", region, account=account)
    for name in FORWARDING_RULES:
        events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.ec2"]}))


def test_schedule_queues_one_sweep_per_active_account_when_in_organization_mode(sandbox: Sandbox) -> None:
    # When the schedule fires
    delivery = sandbox.invoke("sweeper", _tick(sandbox))
    # Then each ACTIVE account has one message naming it and the schedule's event, and no account was swept here
    assert delivery.error is None and delivery.denied == []
    bodies = sorted((json.loads(m["Body"]) for m in _queued(sandbox)), key=lambda body: body["account"])
    assert sandbox.org is not None
    assert [(b["account"], b["name"]) for b in bodies] == sorted((a.id, a.name) for a in sandbox.org.accounts)
    assert {(b["event_id"], b["event_time"], tuple(b["regions"])) for b in bodies} == {
        ("sweep-tick-1", "2026-12-01T06:00:00Z", ())
    }
    assert not any(call.startswith("ec2:") for call in delivery.calls)


def test_member_account_is_swept_through_its_sweeper_role_when_its_message_arrives(sandbox: Sandbox) -> None:
    # Given a public AMI in the prod member, in a region the central stack does not run in
    assert sandbox.org is not None
    prod = sandbox.org.account("prod").id
    image = _public_image(sandbox, prod, OUTSIDE)
    message = _message_for(sandbox, prod)
    sandbox.alerts()
    # When the queue delivers prod's message
    delivery = sandbox.invoke("sweeper", _sqs_event(sandbox, message))
    # Then the share is revoked in the member (enforce mode), alerted with the member's account, none failed
    assert delivery.error is None and delivery.result == {"batchItemFailures": []}
    ec2 = sandbox.internal_client("ec2", OUTSIDE, account=prod)
    assert ec2.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"] == []
    found = [a.message for a in sandbox.alerts() if a.message.get("type") == "public-share"]
    assert [(f["account"], f["region"], f["image_id"], f["action"]) for f in found] == [
        (prod, OUTSIDE, image, "revoked")
    ]


def test_region_with_amis_but_no_forwarding_rule_is_a_coverage_gap_when_swept(sandbox: Sandbox) -> None:
    # Given prod holds AMIs in two regions, and forwards events from one of them only
    assert sandbox.org is not None
    prod = sandbox.org.account("prod").id
    _public_image(sandbox, prod, OUTSIDE)
    _public_image(sandbox, prod, HOME)
    _forwarders(sandbox, prod, HOME)
    message = _message_for(sandbox, prod)
    sandbox.alerts()
    # When
    sandbox.invoke("sweeper", _sqs_event(sandbox, message))
    # Then each missing rule of the uncovered region is a coverage gap; the covered region has none
    gaps = [a.message for a in sandbox.alerts() if a.message.get("type") == "amiguard-coverage-gap"]
    assert sorted((g["account"], g["region"], g["evidence"]["resource"]) for g in gaps) == [
        (prod, OUTSIDE, name) for name in sorted(FORWARDING_RULES)
    ]
    assert {g["severity"] for g in gaps} == {"high"}


def test_refused_member_role_fails_only_that_record_when_the_role_is_missing(sandbox: Sandbox) -> None:
    # Given dev's amiguard-sweeper role was deleted
    assert sandbox.org is not None
    dev = sandbox.org.account("dev").id
    sandbox.internal_client("iam", account=dev).delete_role(RoleName="amiguard-sweeper")
    message = _message_for(sandbox, dev)
    # When
    delivery = sandbox.invoke("sweeper", _sqs_event(sandbox, message))
    # Then the invocation fails (its one record failed: the batch utility raises), so SQS redelivers the message
    # and after three receives the dead-letter queue keeps it
    assert delivery.error is not None and "All records failed processing" in delivery.error
    assert "AccessDenied" in delivery.error and "amiguard-sweeper" in delivery.error


def test_malformed_message_is_dropped_with_a_reason_when_anyone_sends_one(sandbox: Sandbox) -> None:
    # Given a message that names no account
    sqs = sandbox.internal_client("sqs")
    sqs.send_message(QueueUrl=sandbox.sweep_queue_url, MessageBody=json.dumps({"account": "not-an-account"}))
    [message] = _queued(sandbox)
    # When
    delivery = sandbox.invoke("sweeper", _sqs_event(sandbox, message))
    # Then nothing is retried, and the log says why
    assert delivery.result == {"batchItemFailures": []}
    assert "malformed-event" in delivery.output and "not a 12-digit account id" in delivery.output


@pytest.mark.parametrize("event", [{"Records": []}, {"Records": [{"eventSource": "aws:sns", "body": "{}"}]}])
def test_records_that_are_not_an_sqs_batch_are_dropped_as_malformed_when_invoked_directly(
    sandbox: Sandbox, event: dict[str, Any]
) -> None:
    # When someone invokes the sweeper with records its SweepQueue mapping never sends
    delivery = sandbox.invoke("sweeper", event)
    # Then it is a malformed event, dropped with its reason: no crash, no retry
    assert delivery.error is None and delivery.attempts == 1
    assert delivery.result is not None and delivery.result["status"] == "dropped"
