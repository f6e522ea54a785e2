"""Act: an AMI is baked from an untagged instance by an engineer signed in through IAM Identity Center.
tag_enforcer records who made it and from what, flags it for the missing Owner and CostCenter tags and alerts;
the owner then adds them, and the violation is cleared (the snapshots get the tags too)."""

from __future__ import annotations

from typing import Any

from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, assumed_role

CAROL = assumed_role(
    "AWSReservedSSO_DataEngineer_4f1c2b9a7d3e5f60", "carol@example.com", path="/aws-reserved/sso.amazonaws.com/"
)


def _tags(ec2: Any, image_id: str) -> str:
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    return ", ".join(f"{tag['Key']}={tag['Value']}" for tag in sorted(image.get("Tags", []), key=lambda t: t["Key"]))


def act(sandbox: Sandbox, timeline: Timeline) -> None:
    timeline.act("Tag enforcement")
    ec2 = sandbox.client("ec2")
    with acting_as(CAROL):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        image_id = ec2.create_image(InstanceId=instance, Name="reporting-etl-2026-11")["ImageId"]
        timeline.step("carol (SSO)", f"bakes {image_id} (reporting-etl-2026-11) from untagged {instance}, no tags")
    timeline.settle()
    timeline.step("state", f"tags of {image_id}: {_tags(ec2, image_id)}")

    with acting_as(CAROL):
        ec2.create_tags(
            Resources=[image_id],
            Tags=[{"Key": "Owner", "Value": "carol@example.com"}, {"Key": "CostCenter", "Value": "cc-analytics"}],
        )
        timeline.step("carol (SSO)", f"adds Owner and CostCenter to {image_id}")
    timeline.settle()
    timeline.step("state", f"tags of {image_id}: {_tags(ec2, image_id)}")
    snapshot_id = ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    snapshot = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    snapshot_tags = ", ".join(
        f"{t['Key']}={t['Value']}" for t in sorted(snapshot.get("Tags", []), key=lambda t: t["Key"])
    )
    timeline.step("state", f"tags of its snapshot {snapshot_id}: {snapshot_tags}")
