"""EC2 adapter for DR replication in one region: read any visible AMI, find replicas, copy, clean up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from amiguard.aws.errors import is_gone
from amiguard.models.images import Image
from amiguard.policy.replication import REPLICA_OF_TAG, CopyRequest, replica_of_value

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


class Ec2Replication:
    """The replication calls of one region's EC2 client (CopyImage is made in the destination region)."""

    def __init__(self, ec2: EC2Client) -> None:
        self._ec2 = ec2
        self.region: str = ec2.meta.region_name

    def image(self, image_id: str) -> Image | None:
        """The AMI whoever owns it (so that a shared AMI can be reported as not owned); ``None`` if gone."""
        try:
            images = self._ec2.describe_images(ImageIds=[image_id])["Images"]
        except ClientError as error:
            if is_gone(error):
                return None
            raise
        return Image.from_api(images[0], self.region) if images else None

    def replicas_of(self, source_region: str, source_image_id: str) -> list[Image]:
        """Owned AMIs in this region tagged as replicas of the source (the copy amiguard made, if any)."""
        response = self._ec2.describe_images(
            Owners=["self"],
            Filters=[{"Name": f"tag:{REPLICA_OF_TAG}", "Values": [replica_of_value(source_region, source_image_id)]}],
        )
        return [Image.from_api(item, self.region) for item in response["Images"]]

    def copy_image(self, request: CopyRequest) -> str:
        """Start the copy; returns the new AMI's id while it is still ``pending``."""
        if request.destination_region != self.region:
            raise ValueError(f"CopyImage to {request.destination_region} must be made with that region's client")
        response = self._ec2.copy_image(**request.as_api())
        return str(response["ImageId"])

    def deprecate(self, image_id: str, at: datetime) -> None:
        self._ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=at.astimezone(UTC))

    def deregister(self, image_id: str) -> None:
        """Deregister and delete the replica's snapshots (snapshots other AMIs use are kept by EC2)."""
        self._ec2.deregister_image(ImageId=image_id, DeleteAssociatedSnapshots=True)
