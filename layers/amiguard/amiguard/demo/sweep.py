"""Act: problems that were there before amiguard (no event ever said so) are found by the scheduled sweep,
which revokes them in enforce mode and sends one summary."""

from __future__ import annotations

from amiguard.demo.sharing import STRANGER
from amiguard.demo.timeline import Timeline
from amiguard.sandbox.account import Sandbox

SCHEDULED_EVENT = {
    "version": "0",
    "id": "0d8e5a4c-5f0e-4c3e-9b7e-2f1f3f0c9a11",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "time": "2026-11-27T06:00:00Z",
    "detail": {},
}


def act(sandbox: Sandbox, timeline: Timeline) -> None:
    timeline.act("The daily sweep: what no event told")
    # Seeded with the sandbox's own client: no CloudTrail record, as if done before amiguard was deployed.
    ec2 = sandbox.internal_client("ec2")
    image_id = ec2.register_image(Name="legacy-base-2019", RootDeviceName="/dev/xvda")["ImageId"]
    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": STRANGER}]})
    snapshot_id = ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    ec2.modify_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"]
    )
    sandbox.block_public_access.state[sandbox.home] = "unblocked"
    timeline.step(
        "before deployment",
        f"{image_id} shared with {STRANGER}; its snapshot {snapshot_id} public; image block public access off",
    )
    event = SCHEDULED_EVENT | {"account": sandbox.account, "region": sandbox.home}
    timeline.delivery(sandbox.invoke("sweeper", event))
    for alert in sandbox.alerts():
        timeline.alert(alert)
    timeline.settle()  # the sweeper's own revocations are recorded too; public_guard ignores amiguard's calls
