"""An AMI's current tags, from EC2 (what a tag exception is matched against: never the event's word)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


def current_image_tags(ec2: EC2Client, image_id: str) -> dict[str, str] | None:
    """The AMI's tags now; None when EC2 no longer lists it (deregistered)."""
    images = ec2.describe_images(ImageIds=[image_id]).get("Images", [])
    if not images:
        return None
    return {tag["Key"]: tag.get("Value", "") for tag in images[0].get("Tags", [])}
