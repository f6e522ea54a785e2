"""public_guard sees disabled AMIs as the EC2 API does only with IncludeDisabled: a snapshot made public behind
a disabled AMI is revoked and the finding names the AMI (EC2 made the AMI private, not its snapshots)."""

from __future__ import annotations

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user


def test_public_snapshot_of_a_disabled_ami_is_revoked_naming_the_ami_when_made_public(sandbox: Sandbox):
    ec2 = sandbox.internal_client("ec2")
    image_id = ec2.register_image(Name="retired-golden", RootDeviceName="/dev/xvda")["ImageId"]
    snapshot_id = ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    ec2.disable_image(ImageId=image_id)

    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"]
        )
    sandbox.run()

    attribute = ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    assert attribute["CreateVolumePermissions"] == []
    [alert] = [a for a in sandbox.alerts() if a.message["type"] == "public-snapshot"]
    assert alert.message["image_id"] == image_id
    assert alert.message["evidence"]["backed_images"] == [image_id]
