"""An exposure that ended before amiguard looked is still a finding: the event says it happened.

Made public and made private again, or deregistered, within seconds: nothing is left to revoke, but anyone
could have launched or copied the AMI meanwhile. ``exposure-ended-before-check`` names the actor; it is high
for public exposure and info for a share with named untrusted principals. amiguard's own revocation (a
redelivered event) is not reported again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

from ..conftest import STRANGER, TRUSTED_PARTNER, bake_image

BOB = "arn:aws:iam::123456789012:user/dev-bob"


@pytest.fixture(params=["enforce", "audit"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with Sandbox(parameters={"Mode": request.param, "TrustedPrincipals": TRUSTED_PARTNER}) as sb:
        yield sb


def _ended(sb: Sandbox) -> list[dict[str, Any]]:
    return [a.message for a in sb.alerts() if a.message["type"] == "exposure-ended-before-check"]


def test_ended_exposure_is_reported_when_an_ami_is_made_public_and_private_again_before_the_check(sandbox):
    image_id = bake_image(sandbox)["ImageId"]
    ec2 = sandbox.client("ec2")
    with acting_as(iam_user("dev-bob")):
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Remove": [{"Group": "all"}]})

    sandbox.run()

    [finding] = _ended(sandbox)
    assert (finding["severity"], finding["image_id"], finding["actor"]) == ("high", image_id, BOB)
    assert finding["action"] == "none"
    assert finding["evidence"]["now"] == "unshared" and finding["evidence"]["public"] is True


def test_ended_exposure_is_reported_when_a_public_ami_is_deregistered_before_the_check(sandbox):
    image_id = bake_image(sandbox)["ImageId"]
    ec2 = sandbox.client("ec2")
    with acting_as(iam_user("dev-bob")):
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
        ec2.deregister_image(ImageId=image_id)

    sandbox.run()

    [finding] = _ended(sandbox)
    assert (finding["severity"], finding["image_id"], finding["actor"]) == ("high", image_id, BOB)
    assert finding["evidence"]["now"] == "gone"


def test_ended_exposure_is_info_when_an_untrusted_share_is_undone_before_the_check(sandbox):
    image_id = bake_image(sandbox)["ImageId"]
    ec2 = sandbox.client("ec2")
    with acting_as(iam_user("dev-bob")):
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": STRANGER}]})
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Remove": [{"UserId": STRANGER}]})

    sandbox.run()

    [finding] = _ended(sandbox)
    assert finding["severity"] == "info"
    assert finding["evidence"]["untrusted_principals"] == [STRANGER]


def test_ended_exposure_is_reported_when_a_public_snapshot_is_deleted_before_the_check(sandbox):
    image = bake_image(sandbox)
    snapshot_id = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    ec2 = sandbox.client("ec2")
    with acting_as(iam_user("dev-bob")):
        ec2.deregister_image(ImageId=image["ImageId"])
        sandbox.run()
        sandbox.alerts()
        ec2.modify_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"]
        )
        ec2.delete_snapshot(SnapshotId=snapshot_id)

    sandbox.run()

    [finding] = _ended(sandbox)
    assert (finding["severity"], finding["snapshot_id"], finding["actor"]) == ("high", snapshot_id, BOB)


def test_nothing_more_is_reported_when_a_handled_exposure_event_is_delivered_again(sandbox):
    image_id = bake_image(sandbox)["ImageId"]
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    first = sandbox.run()
    event = next(d.event for d in first if d.event.get("detail", {}).get("eventName") == "ModifyImageAttribute")
    with acting_as(iam_user("dev-bob")):  # audit mode: the owner undoes it after amiguard reported it
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image_id, LaunchPermission={"Remove": [{"Group": "all"}]}
        )
    sandbox.run()

    sandbox.put_event(event)
    second = sandbox.run()

    assert [d.result["reason"] for d in second if d.function == "public_guard"] == ["not-exposed"]  # type: ignore[index]
    assert [a.message["type"] for a in sandbox.alerts()] == ["public-share"]
