"""EC2 adapter for DR replication in one region: read any visible AMI, find replicas, copy, clean up."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from amiguard.aws.batching import FILTER_VALUES_MAX, chunks
from amiguard.models.images import Image
from amiguard.policy.replication import REPLICA_OF_TAG, CopyRequest, replica_of_value

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


class Ec2Replication:
    """The replication calls of one region's EC2 client (CopyImage is made in the destination region)."""

    def __init__(self, ec2: EC2Client) -> None:
        self._ec2 = ec2
        self.region: str = ec2.meta.region_name

    def images(self, image_ids: Iterable[str]) -> dict[str, Image]:
        """The AMIs among ``image_ids`` that exist, whoever owns them (disabled ones too), by id.

        One DescribeImages per 200 distinct ids, asked by ``image-id`` filter: an id that is gone is simply
        absent instead of failing the whole call.
        """
        wanted = list(dict.fromkeys(image_ids))
        found: dict[str, Image] = {}
        paginator = self._ec2.get_paginator("describe_images")
        for batch in chunks(wanted, FILTER_VALUES_MAX):
            pages = paginator.paginate(IncludeDisabled=True, Filters=[{"Name": "image-id", "Values": batch}])
            for page in pages:
                for item in page["Images"]:
                    found[item["ImageId"]] = Image.from_api(item, self.region)
        return found

    def replicas_of(self, source_region: str, source_image_id: str) -> list[Image]:
        """Owned AMIs in this region whose tag *claims* to be a replica of the source (anyone may write it:
        only the ledger says which copy amiguard made)."""
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
