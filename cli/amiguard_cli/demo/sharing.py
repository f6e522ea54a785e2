"""Act: an AMI is made public, shared with a stranger and a partner, its snapshot made public, the AMI made
public and private again before amiguard looks, and the account's image block public access turned off.
public_guard undoes each within seconds, and reports the exposure that ended before it looked."""

from __future__ import annotations

from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

STRANGER = "999988887777"
PARTNER = "222233334444"  # in the demo's TrustedPrincipals


def act(sandbox: Sandbox, timeline: Timeline) -> None:
    timeline.act("Public and untrusted sharing")
    ec2 = sandbox.client("ec2")
    with acting_as(iam_user("dev-bob")):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        owned = [{"Key": "Owner", "Value": "bob@example.com"}, {"Key": "CostCenter", "Value": "cc-payments"}]
        image_id = ec2.create_image(
            InstanceId=instance,
            Name="payments-api-2026-11",
            TagSpecifications=[{"ResourceType": "image", "Tags": owned}],
        )["ImageId"]
        timeline.step("dev-bob", f"bakes {image_id} (payments-api-2026-11) from {instance}")
    timeline.settle()

    with acting_as(iam_user("dev-bob")):
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
        timeline.step("dev-bob", f"makes {image_id} public")
    timeline.settle()

    with acting_as(iam_user("dev-bob")):
        ec2.modify_image_attribute(
            ImageId=image_id, LaunchPermission={"Add": [{"UserId": STRANGER}, {"UserId": PARTNER}]}
        )
        timeline.step("dev-bob", f"shares {image_id} with {STRANGER} (unknown) and {PARTNER} (trusted partner)")
    timeline.settle()
    kept = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"]
    timeline.step("state", f"launch permissions of {image_id} now: {kept}")

    snapshot_id = ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    with acting_as(iam_user("dev-bob")):
        ec2.modify_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"]
        )
        timeline.step("dev-bob", f"makes snapshot {snapshot_id} public")
    timeline.settle()

    with acting_as(iam_user("dev-bob")):
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Remove": [{"Group": "all"}]})
        timeline.step("dev-bob", f"makes {image_id} public and private again within a second")
    timeline.settle()

    with acting_as(iam_user("admin-eve")):
        ec2.disable_image_block_public_access()
        timeline.step("admin-eve", "turns off image block public access in us-east-1")
    timeline.settle()
    state = ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"]
    timeline.step("state", f"image block public access in us-east-1: {state}")
