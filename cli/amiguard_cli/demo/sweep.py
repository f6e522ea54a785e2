"""Act: problems that were there before amiguard (no event ever said so) are found by the scheduled sweep,
which fixes them in enforce mode and sends one summary: an untrusted share, a public snapshot, image block
public access off, an AMI approved before dr_replicator existed (copied now, with dr_replicator's request)
and a DR replica whose source is long gone (deprecated; deregistered once ReplicaCleanup=deregister)."""

from __future__ import annotations

from collections.abc import Mapping

from amiguard_cli.demo.replication import APPROVAL_TAG, DR_REGIONS
from amiguard_cli.demo.sharing import STRANGER
from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Sandbox

GONE_SOURCE = "ami-0c0ffee0c0ffee000"  # a source deregistered long before amiguard was deployed

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
    sandbox.internal_client("ec2").disable_image_block_public_access()
    timeline.step(
        "before deployment",
        f"{image_id} shared with {STRANGER}; its snapshot {snapshot_id} public; image block public access off",
    )
    approved = ec2.register_image(Name="golden-base-2019", RootDeviceName="/dev/xvda")["ImageId"]
    ec2.create_tags(Resources=[approved], Tags=[{"Key": APPROVAL_TAG, "Value": "true"}])
    dr = sandbox.internal_client("ec2", DR_REGIONS[0])
    orphan = dr.register_image(Name="golden-base-2018", RootDeviceName="/dev/xvda")["ImageId"]
    source = f"{sandbox.home}/{GONE_SOURCE}"
    dr.create_tags(Resources=[orphan], Tags=[{"Key": "amiguard:replica-of", "Value": source}])
    sandbox.reconfigure(DrRegions=",".join(DR_REGIONS), ReplicaCleanup="deprecate")
    timeline.step(
        "before deployment",
        f"{approved} tagged {APPROVAL_TAG}=true, never copied; {orphan} in {DR_REGIONS[0]}, a replica of {source}",
    )
    event = SCHEDULED_EVENT | {"account": sandbox.account, "region": sandbox.home}
    _sweep(sandbox, timeline, event)
    # The sweeper's own calls are recorded too: public_guard ignores amiguard's calls, dr_replicator tracks the
    # copies it made to available.
    timeline.settle()
    # tag_enforcer's hourly sweep, in every enabled region: the AMIs just marked are within their grace period.
    hourly = event | {"id": "9e4d2b7a-1c3f-4a5e-8d6b-0f2e4c6a8b13", "time": "2026-11-27T07:00:00Z"}
    timeline.delivery(sandbox.invoke("tag_enforcer", hourly))

    sandbox.reconfigure(ReplicaCleanup="deregister")
    timeline.step("setup", "ReplicaCleanup=deregister; the next day's sweep")
    _sweep(sandbox, timeline, event | {"id": "5b1c0f6e-2a8d-4f2e-8c1e-6d3b9f0e7a22", "time": "2026-11-28T06:00:00Z"})
    timeline.settle()
    sandbox.reconfigure(DrRegions="", ReplicaCleanup="deprecate")


def _sweep(sandbox: Sandbox, timeline: Timeline, event: Mapping[str, object]) -> None:
    timeline.delivery(sandbox.invoke("sweeper", dict(event)))
    for alert in sandbox.alerts():
        timeline.alert(alert)
