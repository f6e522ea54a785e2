"""dr_replicator under the sandbox: approvals routed by template.yaml's rules, DR regions forwarding their AMI
events home through region-forwarder.yaml's rules, assertions on the copies in each region, on the request
each CopyImage carried (captured from botocore), on the ledger and on the alerts a topic subscriber gets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user
from amiguard_cli.sandbox.moto_gaps import canned
from tests.conftest import bake_image

DR = ("us-west-2", "eu-west-1")
APPROVAL = "amiguard:approved"
DR_KEY = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SETTINGS = {
    "Mode": "enforce",
    "DrRegions": ",".join(DR),
    "DrKmsKeys": json.dumps({"us-west-2": DR_KEY}),
}


@pytest.fixture
def dr() -> Iterator[Sandbox]:
    with Sandbox(parameters=SETTINGS, forward_regions=DR) as sb:
        yield sb


def fail_copy_in(sb: Sandbox, region: str, code: str, times: int = 10**6) -> list[str]:
    """CopyImage into ``region`` answers ``code`` (``times`` times). Returns the list the failures go to."""
    failures: list[str] = []

    def answer(context: dict[str, Any], **_: Any) -> Any:
        if context.get("client_region") == region and len(failures) < times:
            failures.append(code)
            return canned({"Error": {"Code": code, "Message": f"{code} (injected)"}}, 400)
        return None

    import boto3

    boto3.DEFAULT_SESSION.events.register_first("before-call.ec2.CopyImage", answer)  # type: ignore[union-attr]
    sb.reconfigure()  # handlers rebuild their clients, which copy the session's hooks
    return failures


def approve(sb: Sandbox, image_id: str, value: str = "true", region: str | None = None) -> None:
    with acting_as(iam_user("release-manager")):
        sb.client("ec2", region).create_tags(Resources=[image_id], Tags=[{"Key": APPROVAL, "Value": value}])


def replicas(sb: Sandbox, region: str) -> list[dict[str, Any]]:
    images = sb.client("ec2", region).describe_images(Owners=["self"])["Images"]
    return [image for image in images if any(t["Key"] == "amiguard:replica-of" for t in image.get("Tags", []))]


def ledger_rows(sb: Sandbox, region: str, image_id: str) -> dict[str, dict[str, Any]]:
    dynamodb = sb.internal_client("dynamodb")
    items = dynamodb.query(
        TableName="amiguard-ledger",
        KeyConditionExpression="pk = :pk AND begins_with(sk, :replica)",
        ExpressionAttributeValues={":pk": {"S": f"IMAGE#{region}#{image_id}"}, ":replica": {"S": "REPLICA#"}},
    )["Items"]
    return {item["sk"]["S"]: {k: next(iter(v.values())) for k, v in item.items()} for item in items}


def alert_types(sb: Sandbox) -> list[tuple[str, str, str | None]]:
    return sorted(
        (a.message["type"], a.message["severity"], a.message["evidence"].get("destination_region")) for a in sb.alerts()
    )


def test_approved_ami_is_copied_to_each_dr_region_and_tracked_to_available_when_approval_tag_is_added(dr):
    image = bake_image(dr)
    dr.run()

    approve(dr, image["ImageId"])
    dr.run()

    for region in DR:
        [replica] = replicas(dr, region)
        tags = {t["Key"]: t["Value"] for t in replica["Tags"]}
        assert tags["amiguard:replica-of"] == f"us-east-1/{image['ImageId']}"
        assert tags["amiguard:source-region"] == "us-east-1" and tags["Owner"] == "bob@example.com"
        assert APPROVAL not in tags  # a replica is no approved source: no copy of a copy
        assert replica["Name"] == "golden-base" and replica["State"] == "available"
    rows = ledger_rows(dr, "us-east-1", image["ImageId"])
    assert {sk: row["status"] for sk, row in rows.items()} == {
        "REPLICA#us-west-2": "available",
        "REPLICA#eu-west-1": "available",
    }
    assert all(row["started_at"] <= row["finished_at"] for row in rows.values())
    assert alert_types(dr) == [
        ("replication-complete", "info", "eu-west-1"),
        ("replication-complete", "info", "us-west-2"),
        ("replication-started", "info", "eu-west-1"),
        ("replication-started", "info", "us-west-2"),
    ]
    assert dr.dead_letters == []


def test_copy_request_carries_token_encryption_and_replica_tags_when_sent_to_each_region(dr):
    image = bake_image(dr)

    approve(dr, image["ImageId"])
    dr.run()

    sent = {copy["region"]: copy for copy in dr.copy_fidelity.copies}
    assert set(sent) == set(DR)
    for request in sent.values():
        assert request["SourceRegion"] == "us-east-1" and request["SourceImageId"] == image["ImageId"]
        assert request["Encrypted"] is True and "CopyImageTags" not in request  # the tags are named, minus approval
        assert len(request["ClientToken"]) == 64
        image_spec, snapshot_spec = request["TagSpecifications"]
        mark = {"Key": "amiguard:replica-of", "Value": f"us-east-1/{image['ImageId']}"}
        assert image_spec["ResourceType"] == "image" and mark in image_spec["Tags"]
        assert snapshot_spec == {"ResourceType": "snapshot", "Tags": [mark]}  # what scopes DeleteSnapshot
    assert sent["us-west-2"]["KmsKeyId"] == DR_KEY
    assert "KmsKeyId" not in sent["eu-west-1"]  # the region's default EBS key
    assert sent["us-west-2"]["ClientToken"] != sent["eu-west-1"]["ClientToken"]


def test_duplicate_approval_event_makes_no_second_copy_when_delivered_twice(dr):
    image = bake_image(dr)
    dr.run()
    approve(dr, image["ImageId"])
    [approval] = [
        r
        for r in dr.recorder.records
        if r["eventName"] == "CreateTags"
        and any(tag["key"] == APPROVAL for tag in r["requestParameters"]["tagSet"]["items"])
    ]
    event = {"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "detail": approval}

    dr.put_event(event)  # EventBridge delivers at least once: the same event again
    dr.run()
    dr.put_event(event)
    dr.run()

    assert [len(replicas(dr, region)) for region in DR] == [1, 1]
    assert len(dr.copy_fidelity.copies) == 2
    assert [a[0] for a in alert_types(dr)].count("replication-started") == 2


def test_second_approval_makes_no_extra_copy_when_replicas_exist(dr):
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()
    dr.alerts()

    approve(dr, image["ImageId"], value="TRUE")
    deliveries = dr.run()

    assert [len(replicas(dr, region)) for region in DR] == [1, 1]
    assert dr.alerts() == []
    assert [d.result["reason"] for d in deliveries if d.function == "dr_replicator"] == ["already-replicated"]


def test_approval_at_creation_and_source_state_change_make_one_copy_per_region_when_both_arrive(dr):
    ec2 = dr.client("ec2")
    with acting_as(iam_user("dev-bob")):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        image_id = ec2.create_image(
            InstanceId=instance,
            Name="golden-approved",
            TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": APPROVAL, "Value": "true"}]}],
        )["ImageId"]

    deliveries = dr.run()

    handled = [d.event["detail-type"] for d in deliveries if d.function == "dr_replicator" and d.region == "us-east-1"]
    assert "AWS API Call via CloudTrail" in handled and "EC2 AMI State Change" in handled
    assert [len(replicas(dr, region)) for region in DR] == [1, 1]
    assert len(dr.copy_fidelity.copies) == 2
    assert image_id in {r["SourceImageId"] for r in dr.copy_fidelity.copies}


def test_pending_source_is_copied_only_when_its_available_state_change_arrives(dr):
    from moto.ec2.models import ec2_backends

    image = bake_image(dr)
    dr.run()
    ami = ec2_backends[dr.account]["us-east-1"].amis[image["ImageId"]]
    ami.state = "pending"  # what EC2 reports while CreateImage is still snapshotting

    approve(dr, image["ImageId"])
    first = dr.run()

    assert [d.result["reason"] for d in first if d.function == "dr_replicator"] == ["source-pending"]
    assert dr.copy_fidelity.copies == []

    ami.state = "available"
    dr.put_event(
        {
            "detail-type": "EC2 AMI State Change",
            "source": "aws.ec2",
            "region": "us-east-1",
            "detail": {"RequestId": "r", "ImageId": image["ImageId"], "State": "available", "ErrorMessage": ""},
        }
    )
    dr.run()

    assert [len(replicas(dr, region)) for region in DR] == [1, 1]


def test_ami_owned_by_another_account_is_reported_not_copied_when_approved(dr):
    # ami-12c6146b is one of moto's public AMIs, owned by another account: tagging it is allowed.
    approve(dr, "ami-12c6146b")

    dr.run()

    assert dr.copy_fidelity.copies == []
    [alert] = dr.alerts()
    assert alert.message["type"] == "not-replicable" and alert.message["evidence"]["reason"] == "not-owned"


def test_other_regions_are_copied_when_one_region_keeps_failing_then_failure_is_alerted_high(dr):
    image = bake_image(dr)
    dr.run()
    failures = fail_copy_in(dr, "us-west-2", "ResourceLimitExceeded")

    approve(dr, image["ImageId"])
    dr.run()

    assert len(failures) == 3  # one attempt per Lambda invocation: the first and its two retries
    assert replicas(dr, "us-west-2") == []
    assert len(replicas(dr, "eu-west-1")) == 1
    assert ledger_rows(dr, "us-east-1", image["ImageId"])["REPLICA#us-west-2"]["status"] == "failed"
    assert alert_types(dr) == [
        ("replication-complete", "info", "eu-west-1"),
        ("replication-failed", "high", "us-west-2"),
        ("replication-started", "info", "eu-west-1"),
    ]
    assert dr.dead_letters == []


def test_throttled_region_is_copied_when_the_retry_succeeds(dr):
    image = bake_image(dr)
    dr.run()
    fail_copy_in(dr, "eu-west-1", "RequestLimitExceeded", times=1)

    approve(dr, image["ImageId"])
    dr.run()

    assert [len(replicas(dr, region)) for region in DR] == [1, 1]
    assert len(dr.copy_fidelity.copies) == 2
    assert "replication-failed" not in [a[0] for a in alert_types(dr)]


def test_permanent_copy_error_is_alerted_at_once_when_not_transient(dr):
    image = bake_image(dr)
    dr.run()
    failures = fail_copy_in(dr, "us-west-2", "InvalidParameterValue")

    approve(dr, image["ImageId"])
    dr.run()

    assert failures == ["InvalidParameterValue"]
    [failed] = [a for a in dr.alerts() if a.message["type"] == "replication-failed"]
    assert failed.message["evidence"]["error_code"] == "InvalidParameterValue"
    assert failed.message["evidence"]["kms_key_id"] == DR_KEY


def test_replicas_are_deprecated_when_source_is_deregistered(dr):
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()
    dr.alerts()

    with acting_as(iam_user("dev-bob")):
        dr.client("ec2").deregister_image(ImageId=image["ImageId"])
    dr.run()

    for region in DR:
        [replica] = replicas(dr, region)
        assert replica.get("DeprecationTime")
    [alert] = dr.alerts()
    assert alert.message["type"] == "replica-cleanup" and alert.message["action"] == "deprecated"
    statuses = {row["status"] for row in ledger_rows(dr, "us-east-1", image["ImageId"]).values()}
    assert statuses == {"deprecated"}


def test_replicas_are_deregistered_when_cleanup_is_deregister(dr):
    dr.reconfigure(ReplicaCleanup="deregister")
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()

    with acting_as(iam_user("dev-bob")):
        dr.client("ec2").deregister_image(ImageId=image["ImageId"])
    dr.run()

    assert [replicas(dr, region) for region in DR] == [[], []]
    assert dr.dead_letters == []


def test_replicas_are_kept_when_cleanup_is_none(dr):
    dr.reconfigure(ReplicaCleanup="none")
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()
    dr.alerts()

    with acting_as(iam_user("dev-bob")):
        dr.client("ec2").deregister_image(ImageId=image["ImageId"])
    dr.run()

    assert all(not replicas(dr, region)[0].get("DeprecationTime") for region in DR)
    [alert] = dr.alerts()
    assert alert.message["type"] == "replica-cleanup" and alert.message["action"] == "none"


def test_approval_removal_keeps_replicas_and_reports_info_when_tag_is_deleted(dr):
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()
    dr.alerts()

    with acting_as(iam_user("release-manager")):
        dr.client("ec2").delete_tags(Resources=[image["ImageId"]], Tags=[{"Key": APPROVAL}])
    dr.run()

    assert [len(replicas(dr, region)) for region in DR] == [1, 1]
    [alert] = dr.alerts()
    assert alert.message["type"] == "approval-removed" and alert.message["severity"] == "info"
    assert set(alert.message["evidence"]["replicas_kept"]) == set(DR)


def test_no_copy_is_made_when_approval_is_removed_before_the_source_is_available(dr):
    from moto.ec2.models import ec2_backends

    image = bake_image(dr)
    ami = ec2_backends[dr.account]["us-east-1"].amis[image["ImageId"]]
    ami.state = "pending"
    approve(dr, image["ImageId"])
    approve(dr, image["ImageId"], value="false")
    dr.run()
    ami.state = "available"

    dr.put_event(
        {
            "detail-type": "EC2 AMI State Change",
            "source": "aws.ec2",
            "region": "us-east-1",
            "detail": {"RequestId": "r", "ImageId": image["ImageId"], "State": "available", "ErrorMessage": ""},
        }
    )
    dr.run()

    assert dr.copy_fidelity.copies == []


def test_nothing_is_copied_and_findings_say_would_copy_when_in_audit_mode(dr):
    dr.reconfigure(Mode="audit")
    image = bake_image(dr)

    approve(dr, image["ImageId"])
    approve(dr, image["ImageId"])
    dr.run()

    assert dr.copy_fidelity.copies == []
    assert sorted(a.message["action"] for a in dr.alerts()) == ["would-copy", "would-copy"]


def test_approval_in_a_dr_region_copies_to_the_other_dr_regions_only_when_forwarded_home(dr):
    image = bake_image(dr, region="us-west-2")
    dr.run()

    approve(dr, image["ImageId"], region="us-west-2")
    dr.run()

    assert len(replicas(dr, "eu-west-1")) == 1
    assert replicas(dr, "us-west-2") == []
    assert [c["region"] for c in dr.copy_fidelity.copies] == ["eu-west-1"]


def test_replica_completion_is_never_seen_when_dr_region_has_no_forwarder():
    with Sandbox(parameters=SETTINGS) as sb:  # the stack in us-east-1, nothing deployed in the DR regions
        image = bake_image(sb)
        sb.run()  # the source's own state change first: a later look at the source finishes available copies
        approve(sb, image["ImageId"])
        sb.run()

        assert [len(replicas(sb, region)) for region in DR] == [1, 1]
        assert {row["status"] for row in ledger_rows(sb, "us-east-1", image["ImageId"]).values()} == {"pending"}
        assert "replication-complete" not in [a[0] for a in alert_types(sb)]


def forget_ledger(sb: Sandbox, image_id: str) -> None:
    dynamodb = sb.internal_client("dynamodb")
    for sk in ledger_rows(sb, "us-east-1", image_id):
        dynamodb.delete_item(
            TableName="amiguard-ledger", Key={"pk": {"S": f"IMAGE#us-east-1#{image_id}"}, "sk": {"S": sk}}
        )


def test_copy_is_recovered_through_its_client_token_without_a_second_copy_when_the_ledger_lost_its_row(dr):
    # Given replicas made and tracked, then the ledger's rows lost
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()
    first = {c["region"]: c["image_id"] for c in dr.copy_fidelity.copies}
    forget_ledger(dr, image["ImageId"])
    # When the AMI is approved again
    approve(dr, image["ImageId"])
    dr.run()
    # Then the same ClientToken reaches EC2, which answers with the first copy: nothing new, the rows are back
    assert len(dr.copy_fidelity.copies) == 2
    assert [len(dr.client("ec2", region).describe_images(Owners=["self"])["Images"]) for region in DR] == [1, 1]
    rows = ledger_rows(dr, "us-east-1", image["ImageId"])
    assert {row["replica_id"] for row in rows.values()} == set(first.values())
