"""Act: a release manager approves a golden AMI. dr_replicator copies it, encrypted, to two DR regions, and
tracks both copies to ``available`` through the state changes the DR regions forward home. A second approval
makes no extra copy. Retiring the AMI deprecates its replicas; with ReplicaCleanup=deregister, they go."""

from __future__ import annotations

from typing import Any

from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

DR_REGIONS = ("us-west-2", "eu-west-1")
APPROVAL_TAG = "amiguard:approved"


def _replicas(sandbox: Sandbox, region: str) -> list[dict[str, Any]]:
    images = sandbox.client("ec2", region).describe_images(Owners=["self"])["Images"]
    return [i for i in images if any(t["Key"] == "amiguard:replica-of" for t in i.get("Tags", []))]


def _bake(sandbox: Sandbox, timeline: Timeline, name: str) -> str:
    ec2 = sandbox.client("ec2")
    with acting_as(iam_user("dev-bob")):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        image_id: str = ec2.create_image(
            InstanceId=instance,
            Name=name,
            TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "Owner", "Value": "dev-bob@example.com"}]}],
        )["ImageId"]
        timeline.step("dev-bob", f"bakes {image_id} ({name})")
    timeline.settle()
    return image_id


def _approve(sandbox: Sandbox, timeline: Timeline, image_id: str, note: str = "") -> None:
    with acting_as(iam_user("release-manager")):
        sandbox.client("ec2").create_tags(Resources=[image_id], Tags=[{"Key": APPROVAL_TAG, "Value": "true"}])
        timeline.step("release-manager", f"tags {image_id} {APPROVAL_TAG}=true{note}")
    timeline.settle()


def _show_replicas(sandbox: Sandbox, timeline: Timeline) -> None:
    for region in DR_REGIONS:
        found = [
            f"{i['ImageId']} {i['State']}"
            + (f" deprecated at {i['DeprecationTime']}" if i.get("DeprecationTime") else "")
            for i in _replicas(sandbox, region)
        ]
        timeline.step("state", f"replicas in {region}: {', '.join(found) or 'none'}")


def act(sandbox: Sandbox, timeline: Timeline) -> None:
    timeline.act("DR replication")
    sandbox.reconfigure(DrRegions=",".join(DR_REGIONS), ReplicaCleanup="deprecate")
    sandbox.forward_from(*DR_REGIONS)
    timeline.step("setup", f"DrRegions={','.join(DR_REGIONS)}; region-forwarder.yaml deployed in both")

    golden = _bake(sandbox, timeline, "golden-base-2026-11")
    _approve(sandbox, timeline, golden)
    _show_replicas(sandbox, timeline)

    copies = len(sandbox.copy_fidelity.copies)
    _approve(sandbox, timeline, golden, " again (a duplicate approval)")
    made = len(sandbox.copy_fidelity.copies) - copies
    timeline.step("state", f"CopyImage calls made by the duplicate approval: {made}")

    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").deregister_image(ImageId=golden)
        timeline.step("dev-bob", f"deregisters {golden} (ReplicaCleanup=deprecate)")
    timeline.settle()
    _show_replicas(sandbox, timeline)

    sandbox.reconfigure(ReplicaCleanup="deregister")
    interim = _bake(sandbox, timeline, "golden-base-2026-11-hotfix")
    _approve(sandbox, timeline, interim)
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").deregister_image(ImageId=interim)
        timeline.step("dev-bob", f"deregisters {interim} (ReplicaCleanup=deregister)")
    timeline.settle()
    _show_replicas(sandbox, timeline)
    sandbox.reconfigure(DrRegions="", ReplicaCleanup="deprecate")
