"""Shared fixtures: a sandbox account with amiguard deployed from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

TRUSTED_PARTNER = "222233334444"
STRANGER = "999988887777"
# The default RequiredTags: an AMI baked with these is compliant, so tag_enforcer stays quiet about it.
OWNERSHIP_TAGS = [{"Key": "Owner", "Value": "bob@example.com"}, {"Key": "CostCenter", "Value": "cc-1234"}]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """amiguard in enforce mode, trusting one partner account."""
    with Sandbox(parameters={"Mode": "enforce", "TrustedPrincipals": TRUSTED_PARTNER}) as sb:
        yield sb


def bake_image(sb: Sandbox, name: str = "golden-base", region: str | None = None) -> dict[str, Any]:
    """A tagged AMI owned by the account (made by a developer; the calls are recorded in CloudTrail)."""
    ec2 = sb.client("ec2", region)
    with acting_as(iam_user("dev-bob")):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        tagged = [{"ResourceType": "image", "Tags": OWNERSHIP_TAGS}]
        image_id = ec2.create_image(InstanceId=instance, Name=name, TagSpecifications=tagged)["ImageId"]
    image: dict[str, Any] = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    return image
