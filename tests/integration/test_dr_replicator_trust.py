"""dr_replicator against EC2's real semantics and hostile users, under the sandbox.

EC2: a copy starts ``pending`` and may end ``failed``; a ClientToken reused within the idempotency window answers
with the first copy's id, even a dead one. Users: anyone may write ``amiguard:*`` tags, deregister a replica by
hand, or invoke the function with an event of their own. Which AMI is a replica is the ledger's word checked
against EC2's ``SourceImageId``/``SourceImageRegion``; no attack ends with someone else's AMI cleaned up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user
from tests.conftest import bake_image
from tests.integration.test_dr_replicator import APPROVAL, DR, SETTINGS, approve, ledger_rows, replicas
from tests.samples import load_sample

EAST, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"


@pytest.fixture
def dr() -> Iterator[Sandbox]:
    with Sandbox(parameters=SETTINGS, forward_regions=DR) as sb:
        yield sb


def moto_image(sb: Sandbox, region: str, image_id: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[sb.account][region].amis[image_id]


class PendingCopies:
    """Copies into ``region`` stay ``pending`` (as EC2's do while the snapshots copy) until released."""

    def __init__(self, sb: Sandbox, region: str) -> None:
        self._sb, self._region = sb, region
        boto3.DEFAULT_SESSION.events.register("after-call.ec2.CopyImage", self._hold)  # type: ignore[union-attr]
        sb.reconfigure()  # handlers rebuild their clients, which copy the session's hooks

    def _hold(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if context.get("client_region") == self._region and parsed.get("ImageId"):
            moto_image(self._sb, self._region, parsed["ImageId"]).state = "pending"

    def release(self) -> None:
        boto3.DEFAULT_SESSION.events.unregister("after-call.ec2.CopyImage", self._hold)  # type: ignore[union-attr]
        self._sb.reconfigure()


def copy_failed(sb: Sandbox, region: str, image_id: str) -> None:
    """EC2 fails the copy and sends its "EC2 AMI State Change" (the documented sample), forwarded home."""
    moto_image(sb, region, image_id).state = "failed"
    event = load_sample("docexample-eventbridge-ec2-ami-state-change-failed.json")
    event.update(account=sb.account, region=region, time="2026-11-26T15:00:00Z")
    event["resources"] = [f"arn:aws:ec2:{region}::image/{image_id}"]
    event["detail"] |= {"ImageId": image_id, "ErrorMessage": "Snapshot copy failed: KMS key is not accessible"}
    sb.put_event(event)


def replica_id(sb: Sandbox, region: str) -> str:
    [replica] = replicas(sb, region)
    return str(replica["ImageId"])


def tokens_sent(sb: Sandbox, region: str) -> list[str]:
    return [copy["ClientToken"] for copy in sb.copy_fidelity.copies if copy["region"] == region]


def alerts_of(sb: Sandbox, kind: str) -> list[dict[str, Any]]:
    return [alert.message for alert in sb.alerts() if alert.message["type"] == kind]


def tag(sb: Sandbox, region: str, image_id: str, key: str, value: str, who: str = "mallory") -> None:
    with acting_as(iam_user(who)):
        sb.client("ec2", region).create_tags(Resources=[image_id], Tags=[{"Key": key, "Value": value}])


def image_state(sb: Sandbox, region: str, image_id: str) -> dict[str, Any]:
    [image] = sb.client("ec2", region).describe_images(ImageIds=[image_id])["Images"]
    return dict(image)


# --- 1. a failed copy is retried with a new ClientToken ----------------------------------------------------


def test_failed_copy_is_replaced_by_a_new_copy_with_a_new_client_token_when_the_ami_is_approved_again(dr):
    # Given a copy to us-west-2 that stays pending, then fails (its state change arrives)
    image = bake_image(dr)
    held = PendingCopies(dr, WEST)
    approve(dr, image["ImageId"])
    dr.run()
    failed = replica_id(dr, WEST)
    copy_failed(dr, WEST, failed)
    dr.run()
    assert ledger_rows(dr, EAST, image["ImageId"])[f"REPLICA#{WEST}"]["status"] == "failed"
    assert [a["evidence"]["replica_id"] for a in alerts_of(dr, "replication-failed")] == [failed]
    held.release()
    # When the AMI is approved again
    approve(dr, image["ImageId"])
    dr.run()
    # Then a second copy is made with a new token (the first token would answer with the failed copy), tracked
    # to available; the failed copy is not adopted; eu-west-1 is left alone
    first, second = tokens_sent(dr, WEST)
    assert first != second
    row = ledger_rows(dr, EAST, image["ImageId"])[f"REPLICA#{WEST}"]
    assert row["replica_id"] != failed and row["status"] == "available" and row["generation"] == "2"
    assert image_state(dr, WEST, row["replica_id"])["State"] == "available"
    assert len(tokens_sent(dr, EU)) == 1


# --- 2. a replica deregistered by hand is copied again --------------------------------------------------------


def test_replica_deregistered_by_hand_is_copied_again_with_a_new_token_when_the_ami_is_approved_again(dr):
    # Given replicas in both DR regions, then the us-west-2 one deregistered by someone
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()
    dead = replica_id(dr, WEST)
    with acting_as(iam_user("dev-carol")):
        dr.client("ec2", WEST).deregister_image(ImageId=dead)
    dr.run()
    dr.alerts()
    # When the AMI is approved again
    approve(dr, image["ImageId"])
    dr.run()
    # Then the ledger is reconciled with EC2: a new copy (new token) in us-west-2 only
    new = replica_id(dr, WEST)
    assert new != dead
    assert len(set(tokens_sent(dr, WEST))) == 2 and len(tokens_sent(dr, EU)) == 1
    assert ledger_rows(dr, EAST, image["ImageId"])[f"REPLICA#{WEST}"]["replica_id"] == new
    [started] = alerts_of(dr, "replication-started")
    assert started["evidence"]["replaces"] == dead and started["evidence"]["destination_region"] == WEST


# --- 3. a replica is recognised from the ledger, not from its tag -------------------------------------------


def test_replica_stays_a_replica_when_its_replica_of_tag_is_removed_and_it_is_approved(dr):
    # Given a replica in us-west-2, whose amiguard:replica-of tag someone removes, and which someone approves
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()
    west = replica_id(dr, WEST)
    assert APPROVAL not in {t["Key"] for t in replicas(dr, WEST)[0]["Tags"]}  # never carried onto a replica
    with acting_as(iam_user("mallory")):
        dr.client("ec2", WEST).delete_tags(Resources=[west], Tags=[{"Key": "amiguard:replica-of"}])
    # When it is approved (the approval is recorded in us-west-2 and forwarded home)
    approve(dr, west, region=WEST)
    deliveries = dr.run()
    # Then it is not copied on (no copy of a copy): the ledger says it is us-east-1's replica
    assert len(dr.copy_fidelity.copies) == 2
    assert "is-replica" in [d.result["reason"] for d in deliveries if d.function == "dr_replicator"]


# --- 4. amiguard:* tags are claims, not facts -------------------------------------------------------------


def test_approved_ami_is_copied_and_the_forged_tag_reported_when_someone_tagged_it_a_replica(dr):
    # Given an AMI someone tagged as a "replica" (so that it would never be copied)
    image = bake_image(dr)
    dr.run()
    dr.alerts()
    tag(dr, EAST, image["ImageId"], "amiguard:replica-of", "us-west-2/ami-0aaaabbbbccccdddd")
    # When it is approved
    approve(dr, image["ImageId"])
    dr.run()
    # Then it is copied to both DR regions, and the tag is a high finding
    assert [len(replicas(dr, region)) for region in DR] == [1, 1]
    [forged] = alerts_of(dr, "forged-amiguard-tag")
    assert (forged["severity"], forged["image_id"], forged["action"]) == ("high", image["ImageId"], "none")
    assert forged["evidence"]["value"] == "us-west-2/ami-0aaaabbbbccccdddd"


def test_approved_copy_made_by_hand_is_replicated_when_someone_tags_it_a_replica_of_its_real_source(dr):
    # Given an AMI a team copied by hand from us-west-2 into us-east-1 (EC2 reports its source), tagged as the
    # "replica" of that very source, so that EC2 and the tag agree; the ledger knows nothing of it
    original = bake_image(dr, name="team-base", region=WEST)
    dr.run()
    with acting_as(iam_user("dev-bob")):
        copied = dr.client("ec2").copy_image(SourceRegion=WEST, SourceImageId=original["ImageId"], Name="team-base")
    dr.run()
    tag(dr, EAST, copied["ImageId"], "amiguard:replica-of", f"{WEST}/{original['ImageId']}")
    # When it is approved
    approve(dr, copied["ImageId"])
    dr.run()
    # Then it is copied to the DR regions like any approved AMI (a tag must not hide it from replication)
    made = {c["region"] for c in dr.copy_fidelity.copies if c["SourceImageId"] == copied["ImageId"]}
    assert made == {WEST, EU}


def test_someone_elses_ami_tagged_a_replica_of_a_deregistered_ami_is_left_alone_when_cleanup_deregisters(dr):
    # Given: ReplicaCleanup=deregister; carol's AMI in us-west-2; mallory's own approved AMI, replicated; mallory
    # tags carol's AMI as a replica of hers, then deregisters hers
    dr.reconfigure(ReplicaCleanup="deregister")
    carol = bake_image(dr, name="carol-app", region=WEST)
    mallory = bake_image(dr, name="mallory-base")
    approve(dr, mallory["ImageId"])
    dr.run()
    tag(dr, WEST, carol["ImageId"], "amiguard:replica-of", f"{EAST}/{mallory['ImageId']}")
    dr.run()
    dr.alerts()
    # When mallory's AMI is deregistered
    with acting_as(iam_user("mallory")):
        dr.client("ec2").deregister_image(ImageId=mallory["ImageId"])
    dr.run()
    # Then the replicas amiguard made are deregistered; carol's AMI is untouched and the forged tag is reported
    carols = image_state(dr, WEST, carol["ImageId"])
    assert carols["State"] == "available" and not carols.get("DeprecationTime")
    assert [replicas(dr, region) for region in (EU,)] == [[]]
    assert [r["ImageId"] for r in replicas(dr, WEST)] == [carol["ImageId"]]
    [forged] = alerts_of(dr, "forged-amiguard-tag")
    assert forged["image_id"] == carol["ImageId"] and forged["region"] == WEST


def test_ami_tagged_a_replica_of_a_missing_source_is_never_cleaned_up_when_that_source_is_deregistered(dr):
    # Given carol's AMI tagged as the replica of an AMI that never existed, and a DeregisterImage naming it,
    # invoked directly (anyone allowed to invoke the function can)
    dr.reconfigure(ReplicaCleanup="deregister")
    carol = bake_image(dr, name="carol-app", region=WEST)
    tag(dr, WEST, carol["ImageId"], "amiguard:replica-of", f"{EAST}/ami-0aaaabbbbccccdddd")
    dr.run()
    # When
    dr.invoke("dr_replicator", deregister_event(dr, "ami-0aaaabbbbccccdddd"))
    # Then
    assert image_state(dr, WEST, carol["ImageId"])["State"] == "available"
    assert [a.message["type"] for a in dr.alerts()] == ["forged-amiguard-tag"]


# --- 5. no destruction from the event alone ----------------------------------------------------------------


def deregister_event(sb: Sandbox, image_id: str) -> dict[str, Any]:
    record = {
        "eventVersion": "1.09",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DeregisterImage",
        "awsRegion": EAST,
        "eventID": f"forged-{image_id}",
        "eventTime": "2026-11-26T15:00:00Z",
        "recipientAccountId": sb.account,
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{sb.account}:user/mallory"},
        "requestParameters": {"imageId": image_id},
        "responseElements": {"_return": True},
    }
    return {
        "version": "0",
        "id": f"forged-{image_id}",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": sb.account,
        "region": EAST,
        "time": "2026-11-26T15:00:00Z",
        "resources": [],
        "detail": record,
    }


def test_replicas_are_kept_when_a_deregister_event_names_a_source_that_still_exists(dr):
    # Given replicas of an approved AMI, ReplicaCleanup=deregister
    dr.reconfigure(ReplicaCleanup="deregister")
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()
    dr.alerts()
    # When the function is invoked with a DeregisterImage event for it (direct invoke; or the AMI restored from
    # the Recycle Bin under its id)
    delivery = dr.invoke("dr_replicator", deregister_event(dr, image["ImageId"]))
    # Then nothing is cleaned up
    assert [len(replicas(dr, region)) for region in DR] == [1, 1]
    assert all(not replica.get("DeprecationTime") for region in DR for replica in replicas(dr, region))
    assert delivery.result["detail"].startswith("source-exists") and dr.alerts() == []
    assert {row["status"] for row in ledger_rows(dr, EAST, image["ImageId"]).values()} == {"available"}


# --- 7. load amplification ---------------------------------------------------------------------------------


def test_one_approval_naming_an_ami_a_thousand_times_costs_a_few_calls_when_delivered(dr):
    # Given an approved, replicated AMI
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()
    [approval] = [
        r
        for r in dr.recorder.records
        if r["eventName"] == "CreateTags" and APPROVAL in json.dumps(r["requestParameters"])
    ]
    # When a CreateTags approval names it 1,000 times
    approval = json.loads(json.dumps(approval))
    approval["requestParameters"]["resourcesSet"]["items"] = [{"resourceId": image["ImageId"]}] * 1000
    event = {"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "account": dr.account}
    delivery = dr.invoke("dr_replicator", event | {"region": EAST, "detail": approval})
    # Then it is looked at once: one DescribeImages for the AMI, one per DR region for its replica, one Query of
    # its replica rows and one of the event's outbox rows (alerted by the first delivery: nothing pending)
    assert delivery.calls.count("ec2:DescribeImages") == 1 + len(DR)
    assert delivery.calls.count("dynamodb:Query") == 2
    assert delivery.result["reason"] == "already-replicated"


# --- the sweep: the same reconciliation, the same records --------------------------------------------------

SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "time": "2026-11-27T06:00:00Z",
    "region": EAST,
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/amiguard-SweeperFunctionSweep"],
    "detail": {},
}


def sweep(sb: Sandbox) -> dict[str, Any]:
    delivery = sb.invoke("sweeper", SCHEDULED_EVENT | {"account": sb.account})
    assert delivery.error is None, delivery.error
    assert delivery.result is not None
    sb.run()  # what the sweep's own calls set off (its copies' state changes reach dr_replicator)
    return delivery.result


def test_sweep_copies_a_replica_deregistered_by_hand_again_with_a_new_token_and_records_it(dr):
    # Given replicas of an approved AMI, the us-west-2 one then deregistered by hand
    image = bake_image(dr)
    approve(dr, image["ImageId"])
    dr.run()
    dead = replica_id(dr, WEST)
    with acting_as(iam_user("dev-carol")):
        dr.client("ec2", WEST).deregister_image(ImageId=dead)
    dr.run()
    # When the sweep runs
    sweep(dr)
    # Then it made a new copy with the next generation's token (the first would answer with the dead copy),
    # recorded like dr_replicator's own and tracked to available
    new = replica_id(dr, WEST)
    assert new != dead and len(set(tokens_sent(dr, WEST))) == 2
    row = ledger_rows(dr, EAST, image["ImageId"])[f"REPLICA#{WEST}"]
    assert (row["replica_id"], row["generation"], row["status"]) == (new, "2", "available")


def test_sweep_leaves_someone_elses_ami_tagged_a_replica_alone_and_reports_the_tag_when_cleanup_deregisters(dr):
    # Given carol's AMI in us-west-2, tagged as the replica of an AMI that is gone; ReplicaCleanup=deregister
    dr.reconfigure(ReplicaCleanup="deregister")
    carol = bake_image(dr, name="carol-app", region=WEST)
    tag(dr, WEST, carol["ImageId"], "amiguard:replica-of", f"{EAST}/ami-0aaaabbbbccccdddd")
    dr.run()
    # When the sweep runs
    result = sweep(dr)
    # Then carol's AMI is untouched; the tag is a high finding
    assert image_state(dr, WEST, carol["ImageId"])["State"] == "available"
    [forged] = [f for f in result["findings"] if f["type"] == "forged-amiguard-tag"]
    assert (forged["image_id"], forged["severity"], forged["action"]) == (carol["ImageId"], "high", "none")
    assert "replica-cleanup" not in [f["type"] for f in result["findings"]]
