"""dr_replicator's EC2 calls as EC2 receives them (botocore Stubber: moto ignores ClientToken, tags and
encryption on CopyImage and has no EnableImageDeprecation), and a copy tracked from ``pending`` to its
state change in the DR region (moto makes copies ``available`` at once; EC2 does not)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from amiguard.aws.replicas import DynamoReplicaLedger
from amiguard.aws.replication import Ec2Replication
from amiguard.models.findings import Finding
from amiguard.models.replicas import ReplicaRecord, ReplicaStatus
from amiguard.models.settings import load_settings
from amiguard.services.dr_replicator import DrReplicator

ACCOUNT = "123456789012"
SOURCE = "ami-0123456789abcdef0"
REPLICA = "ami-0fedcba9876543210"
TOKEN_WEST = "a" * 64
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


class Alerts:
    def __init__(self) -> None:
        self.published: list[Finding] = []

    def publish(self, finding: Finding) -> None:
        self.published.append(finding)


def describe(
    image_id: str, tags: dict[str, str], state: str = "available", copied_from: str | None = None
) -> dict[str, Any]:
    image: dict[str, Any] = {
        "ImageId": image_id,
        "OwnerId": ACCOUNT,
        "Name": "golden-base",
        "State": state,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }
    if copied_from:  # what EC2 reports of a copied AMI
        image["SourceImageRegion"], image["SourceImageId"] = copied_from.split("/")
    return {"Images": [image]}


def by_id(image_id: str) -> dict[str, Any]:
    """DescribeImages as dr_replicator asks it: by image-id filter (a gone id is absent, not an error)."""
    return {"IncludeDisabled": True, "Filters": [{"Name": "image-id", "Values": [image_id]}]}


def replica(state: str = "available", **tags: str) -> dict[str, Any]:
    return describe(REPLICA, {"amiguard:replica-of": f"us-east-1/{SOURCE}", **tags}, state, f"us-east-1/{SOURCE}")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def aws() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="ledger",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def service(clients: dict[str, Any], clock: Clock, alerts: Alerts, **settings: Any) -> DrReplicator:
    defaults = {"dr_regions": ("us-west-2",), "dr_kms_keys": {"us-west-2": "alias/dr-amis"}}
    return DrReplicator(
        settings=load_settings(**(defaults | settings)),
        replication=lambda region: Ec2Replication(clients[region]),
        ledger=DynamoReplicaLedger(boto3.client("dynamodb", region_name="us-east-1"), "ledger"),
        alerts=alerts,
        clock=clock,
    )


def approval_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": "e1",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": ACCOUNT,
        "region": "us-east-1",
        "detail": {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "CreateTags",
            "awsRegion": "us-east-1",
            "eventID": "e1",
            "recipientAccountId": ACCOUNT,
            "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/release-manager"},
            "requestParameters": {
                "resourcesSet": {"items": [{"resourceId": SOURCE}]},
                "tagSet": {"items": [{"key": "amiguard:approved", "value": "true"}]},
            },
            "responseElements": {"_return": True},
        },
    }


def state_change(region: str, image_id: str, state: str, error: str = "") -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"sc-{state}",
        "detail-type": "EC2 AMI State Change",
        "source": "aws.ec2",
        "account": ACCOUNT,
        "region": region,
        "resources": [f"arn:aws:ec2:{region}::image/{image_id}"],
        "detail": {"RequestId": "r", "ImageId": image_id, "State": state, "ErrorMessage": error},
    }


def stubbed(region: str) -> tuple[Any, Stubber]:
    client = boto3.client("ec2", region_name=region)
    return client, Stubber(client)


def expect_copy(west: Stubber) -> None:
    from amiguard.policy.replication import client_token

    west.add_response(
        "copy_image",
        {"ImageId": REPLICA},
        {
            "SourceRegion": "us-east-1",
            "SourceImageId": SOURCE,
            "Name": "golden-base",
            "Description": f"DR replica of us-east-1/{SOURCE}",
            "ClientToken": client_token("us-east-1", SOURCE, "us-west-2"),
            "Encrypted": True,
            "KmsKeyId": "alias/dr-amis",
            "TagSpecifications": [
                {
                    "ResourceType": "image",
                    "Tags": [
                        {"Key": "amiguard:replica-of", "Value": f"us-east-1/{SOURCE}"},
                        {"Key": "amiguard:source-image", "Value": SOURCE},
                        {"Key": "amiguard:source-region", "Value": "us-east-1"},
                    ],
                },
                {"ResourceType": "snapshot", "Tags": [{"Key": "amiguard:replica-of", "Value": f"us-east-1/{SOURCE}"}]},
            ],
        },
    )
    # no ledger row: the answer might be an earlier copy's (a lost row), so EC2 is asked whether it lives
    west.add_response("describe_images", replica("pending"), by_id(REPLICA))


def test_copy_image_is_sent_exactly_once_to_the_destination_region_when_approved(aws):
    east, east_stub = stubbed("us-east-1")
    west, west_stub = stubbed("us-west-2")
    east_stub.add_response("describe_images", describe(SOURCE, {"amiguard:approved": "true"}), by_id(SOURCE))
    expect_copy(west_stub)
    alerts = Alerts()

    with east_stub, west_stub:
        outcome = service({"us-east-1": east, "us-west-2": west}, Clock(), alerts).handle(approval_event())

    east_stub.assert_no_pending_responses()
    west_stub.assert_no_pending_responses()
    assert [f.type for f in outcome.findings] == ["replication-started"]
    assert outcome.findings[0].evidence["replica_id"] == REPLICA


def test_copy_is_tracked_from_pending_to_available_with_latency_when_dr_state_change_arrives(aws):
    east, east_stub = stubbed("us-east-1")
    west, west_stub = stubbed("us-west-2")
    east_stub.add_response("describe_images", describe(SOURCE, {"amiguard:approved": "true"}), by_id(SOURCE))
    expect_copy(west_stub)
    west_stub.add_response("describe_images", replica(), by_id(REPLICA))
    west_stub.add_response("describe_images", replica(), by_id(REPLICA))
    clock, alerts = Clock(), Alerts()
    replicator = service({"us-east-1": east, "us-west-2": west}, clock, alerts)

    with east_stub, west_stub:
        replicator.handle(approval_event())
        pending = replicator._ledger.replicas("us-east-1", SOURCE)["us-west-2"]
        clock.now = NOW + timedelta(minutes=7)
        done = replicator.handle(state_change("us-west-2", REPLICA, "available"))
        again = replicator.handle(state_change("us-west-2", REPLICA, "available"))

    assert pending.status == "pending" and pending.replica_id == REPLICA
    [complete] = done.findings
    assert complete.type == "replication-complete" and complete.image_id == SOURCE
    assert complete.evidence["latency_seconds"] == 420.0
    assert [(m.name, m.value) for m in done.measurements] == [("ReplicationSeconds", 420.0)]
    # The same event again (a retry whose first attempt may not have alerted) reports the same completion, the
    # same finding identity (its alert is de-duplicated), and does not measure the latency twice.
    assert [f.fingerprint for f in again.findings] == [complete.fingerprint] and again.measurements == []


def test_completion_is_not_reported_again_when_another_event_finds_the_replica_finished(aws):
    # Given a copy whose state change was recorded by one event
    east, east_stub = stubbed("us-east-1")
    west, west_stub = stubbed("us-west-2")
    east_stub.add_response("describe_images", describe(SOURCE, {"amiguard:approved": "true"}), by_id(SOURCE))
    expect_copy(west_stub)
    west_stub.add_response("describe_images", replica(), by_id(REPLICA))
    west_stub.add_response("describe_images", replica(), by_id(REPLICA))
    replicator = service({"us-east-1": east, "us-west-2": west}, Clock(), Alerts())
    with east_stub, west_stub:
        replicator.handle(approval_event())
        done = replicator.handle(state_change("us-west-2", REPLICA, "available"))
        # When another event (not a retry of that one) says the same
        other = replicator.handle(state_change("us-west-2", REPLICA, "available") | {"id": "sc-another"})

    # Then only the event that recorded it reports it
    assert [f.type for f in done.findings] == ["replication-complete"]
    assert other.findings == [] and other.reason == "already-recorded"


def test_replica_failing_in_dr_region_is_alerted_high_when_its_state_change_says_failed(aws):
    east, east_stub = stubbed("us-east-1")
    west, west_stub = stubbed("us-west-2")
    east_stub.add_response("describe_images", describe(SOURCE, {"amiguard:approved": "true"}), by_id(SOURCE))
    expect_copy(west_stub)
    west_stub.add_response("describe_images", replica("failed"), by_id(REPLICA))
    replicator = service({"us-east-1": east, "us-west-2": west}, Clock(), Alerts())

    with east_stub, west_stub:
        replicator.handle(approval_event())
        # EC2 checks the KMS key asynchronously: a missing key shows up as the copy failing.
        outcome = replicator.handle(state_change("us-west-2", REPLICA, "failed", "KMS key not accessible"))

    [failed] = outcome.findings
    assert (failed.type, failed.severity) == ("replication-failed", "high")
    assert failed.evidence["error_message"] == "KMS key not accessible"
    assert replicator._ledger.replicas("us-east-1", SOURCE)["us-west-2"].status == "failed"


def deregister_event() -> dict[str, Any]:
    event = approval_event()
    event["detail"] |= {"eventName": "DeregisterImage", "requestParameters": {"imageId": SOURCE}}
    return event


def record_replica(status: str = "available") -> None:
    """The ledger row dr_replicator wrote when it made REPLICA."""
    DynamoReplicaLedger(boto3.client("dynamodb", region_name="us-east-1"), "ledger").claim(
        ReplicaRecord(
            source_region="us-east-1",
            source_image_id=SOURCE,
            destination_region="us-west-2",
            status=ReplicaStatus(status),
            replica_id=REPLICA,
            started_at=NOW - timedelta(days=3),
        )
    )


def tagged_as_replicas() -> dict[str, Any]:
    return {"Owners": ["self"], "Filters": [{"Name": "tag:amiguard:replica-of", "Values": [f"us-east-1/{SOURCE}"]}]}


def source_gone(east_stub: Stubber) -> None:
    east_stub.add_response("describe_images", {"Images": []}, by_id(SOURCE))


def test_replica_deprecation_is_requested_when_source_is_deregistered(aws):
    # Given a replica the ledger records, and its source gone
    record_replica()
    east, east_stub = stubbed("us-east-1")
    west, west_stub = stubbed("us-west-2")
    source_gone(east_stub)
    west_stub.add_response("describe_images", replica(), by_id(REPLICA))
    west_stub.add_response("describe_images", replica(), tagged_as_replicas())
    west_stub.add_response(
        "enable_image_deprecation", {"Return": True}, {"ImageId": REPLICA, "DeprecateAt": NOW + timedelta(minutes=2)}
    )
    # When
    with east_stub, west_stub:
        outcome = service({"us-east-1": east, "us-west-2": west}, Clock(), Alerts()).handle(deregister_event())
    # Then
    west_stub.assert_no_pending_responses()
    assert [(f.type, f.action) for f in outcome.findings] == [("replica-cleanup", "deprecated")]


def test_replica_and_its_snapshots_are_deregistered_when_cleanup_is_deregister(aws):
    record_replica()
    east, east_stub = stubbed("us-east-1")
    west, west_stub = stubbed("us-west-2")
    source_gone(east_stub)
    west_stub.add_response("describe_images", replica(), by_id(REPLICA))
    west_stub.add_response("describe_images", replica(), tagged_as_replicas())
    west_stub.add_response(
        "deregister_image", {"Return": True}, {"ImageId": REPLICA, "DeleteAssociatedSnapshots": True}
    )

    with east_stub, west_stub:
        outcome = service(
            {"us-east-1": east, "us-west-2": west}, Clock(), Alerts(), replica_cleanup="deregister"
        ).handle(deregister_event())

    west_stub.assert_no_pending_responses()
    assert [(f.type, f.action) for f in outcome.findings] == [("replica-cleanup", "deregistered")]


def test_image_only_tagged_as_a_replica_is_reported_not_deregistered_when_its_named_source_is_deregistered(aws):
    # Given someone else's AMI in the DR region, tagged amiguard:replica-of its (now gone) "source"; no ledger row.
    # EC2 says it was made by CreateImage from another AMI of its own region: no copy at all.
    east, east_stub = stubbed("us-east-1")
    west, west_stub = stubbed("us-west-2")
    source_gone(east_stub)
    victim = describe(
        REPLICA, {"amiguard:replica-of": f"us-east-1/{SOURCE}"}, copied_from="us-west-2/ami-0aaaabbbbccccdddd"
    )
    west_stub.add_response("describe_images", victim, tagged_as_replicas())
    # When the source's DeregisterImage arrives, with ReplicaCleanup=deregister
    with east_stub, west_stub:
        outcome = service(
            {"us-east-1": east, "us-west-2": west}, Clock(), Alerts(), replica_cleanup="deregister"
        ).handle(deregister_event())
    # Then no DeregisterImage was sent (the stub would have failed on it), and the tag is a high finding
    west_stub.assert_no_pending_responses()
    [forged] = outcome.findings
    assert (forged.type, forged.severity, forged.image_id, forged.action) == (
        "forged-amiguard-tag",
        "high",
        REPLICA,
        "none",
    )
    assert forged.evidence["ec2_source"] == "us-west-2/ami-0aaaabbbbccccdddd"


def test_replicas_are_kept_when_the_deregistered_source_still_exists(aws):
    # Given a recorded replica, and a DeregisterImage event for a source that is still there (an event
    # invoked by hand, or the AMI restored from the Recycle Bin under its id)
    record_replica()
    east, east_stub = stubbed("us-east-1")
    west, west_stub = stubbed("us-west-2")
    east_stub.add_response("describe_images", describe(SOURCE, {"amiguard:approved": "true"}), by_id(SOURCE))
    # When
    with east_stub, west_stub:
        outcome = service(
            {"us-east-1": east, "us-west-2": west}, Clock(), Alerts(), replica_cleanup="deregister"
        ).handle(deregister_event())
    # Then nothing was asked of the DR region, let alone deregistered
    east_stub.assert_no_pending_responses()
    assert outcome.findings == []
    assert outcome.detail.startswith("source-exists")


def test_replica_whose_tag_was_removed_is_tracked_from_ec2s_source_when_its_state_change_arrives(aws):
    # Given a pending replica the ledger records; someone removed its amiguard:replica-of tag. EC2 still reports
    # SourceImageId/SourceImageRegion (moto does not: the stub answers as EC2 does)
    record_replica("pending")
    east, _ = stubbed("us-east-1")
    west, west_stub = stubbed("us-west-2")
    untagged = describe(REPLICA, {"Owner": "bob@example.com"}, "available", f"us-east-1/{SOURCE}")
    west_stub.add_response("describe_images", untagged, by_id(REPLICA))
    # When its "available" state change arrives
    with west_stub:
        outcome = service({"us-east-1": east, "us-west-2": west}, Clock(), Alerts()).handle(
            state_change("us-west-2", REPLICA, "available")
        )
    # Then the ledger's replica is tracked to available: not taken for a new source
    [complete] = outcome.findings
    assert (complete.type, complete.image_id, complete.evidence["replica_id"]) == (
        "replication-complete",
        SOURCE,
        REPLICA,
    )
