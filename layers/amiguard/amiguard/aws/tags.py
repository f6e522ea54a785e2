"""EC2 adapter for tag enforcement in one region: AMI and instance tags, tag writes, escalation calls.

Batching follows EC2's limits: DescribeImages takes many ids (asked by ``image-id`` filter, so that one
deregistered id does not fail the whole batch), CreateTags / DeleteTags take many resources per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from amiguard.aws.batching import FILTER_VALUES_MAX, TAG_RESOURCES_MAX, chunks
from amiguard.aws.errors import error_code
from amiguard.models.images import Image, tags_from_api
from amiguard.policy.tagging import VIOLATION_SINCE

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

INSTANCE_GONE = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})
IMAGE_GONE = frozenset({"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed"})
# Instances that still use an AMI: deregistering it would strand them (no relaunch, no replacement).
IN_USE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]


class Ec2Tagging:
    """Tags of AMIs, their snapshots and source instances, and the escalation calls, in the client's region."""

    def __init__(self, ec2: EC2Client) -> None:
        self._ec2 = ec2
        self.region: str = ec2.meta.region_name

    # --- reads ------------------------------------------------------------------------------------------

    def owned_image(self, image_id: str) -> Image | None:
        """The AMI if this account owns it (also while ``pending`` or ``disabled``); raises if it does not exist."""
        images = self._ec2.describe_images(ImageIds=[image_id], Owners=["self"], IncludeDisabled=True)["Images"]
        return Image.from_api(images[0], self.region) if images else None

    def owned_images(self, image_ids: Sequence[str]) -> list[Image]:
        """Owned AMIs among ``image_ids``; ids that are gone or someone else's are simply absent."""
        found: list[Image] = []
        for batch in chunks(image_ids, FILTER_VALUES_MAX):
            paginator = self._ec2.get_paginator("describe_images")
            pages = paginator.paginate(
                Owners=["self"], IncludeDisabled=True, Filters=[{"Name": "image-id", "Values": batch}]
            )
            found.extend(Image.from_api(item, self.region) for page in pages for item in page["Images"])
        return found

    def any_image(self, image_id: str) -> Image | None:
        """Any AMI this account can see (a CopyImage source may be another account's); ``None`` when gone."""
        try:
            images = self._ec2.describe_images(ImageIds=[image_id], IncludeDisabled=True)["Images"]
        except ClientError as error:
            if error_code(error) in IMAGE_GONE:
                return None
            raise
        return Image.from_api(images[0], self.region) if images else None

    def instance_tags(self, instance_id: str) -> dict[str, str] | None:
        """The instance's tags; ``None`` when it no longer exists (terminated long ago)."""
        try:
            reservations = self._ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except ClientError as error:
            if error_code(error) in INSTANCE_GONE:
                return None
            raise
        for reservation in reservations:
            for instance in reservation.get("Instances", []):
                return tags_from_api(instance.get("Tags"))
        return None

    def snapshot_tags(self, snapshot_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Tags of this account's snapshots among ``snapshot_ids``; missing ones are simply absent."""
        found: dict[str, dict[str, str]] = {}
        for batch in chunks(snapshot_ids, FILTER_VALUES_MAX):
            response = self._ec2.describe_snapshots(
                OwnerIds=["self"], Filters=[{"Name": "snapshot-id", "Values": batch}]
            )
            for snapshot in response["Snapshots"]:
                found[snapshot["SnapshotId"]] = tags_from_api(snapshot.get("Tags"))
        return found

    def images_in_violation(self) -> list[Image]:
        """Owned AMIs carrying ``amiguard:violation-since`` (what the escalation sweep looks at)."""
        paginator = self._ec2.get_paginator("describe_images")
        pages = paginator.paginate(Owners=["self"], Filters=[{"Name": "tag-key", "Values": [VIOLATION_SINCE]}])
        return [Image.from_api(item, self.region) for page in pages for item in page["Images"]]

    def instances_using(self, image_id: str) -> int:
        """How many instances launched from this AMI are not terminated (stops counting at one page)."""
        response = self._ec2.describe_instances(
            Filters=[
                {"Name": "image-id", "Values": [image_id]},
                {"Name": "instance-state-name", "Values": IN_USE_STATES},
            ],
            MaxResults=5,
        )
        return sum(len(reservation.get("Instances", [])) for reservation in response["Reservations"])

    # --- writes -----------------------------------------------------------------------------------------

    def add_tags(self, resource_ids: Iterable[str], tags: Mapping[str, str]) -> int:
        """Set ``tags`` on every resource (AMIs and snapshots alike); returns the number of CreateTags calls."""
        if not tags:
            return 0
        api_tags: list[Any] = [{"Key": key, "Value": value} for key, value in tags.items()]
        calls = 0
        for batch in chunks(list(dict.fromkeys(resource_ids)), TAG_RESOURCES_MAX):
            self._ec2.create_tags(Resources=batch, Tags=api_tags)
            calls += 1
        return calls

    def remove_tags(self, resource_ids: Iterable[str], keys: Iterable[str]) -> int:
        """Delete these keys (whatever their value) from every resource."""
        api_tags: list[Any] = [{"Key": key} for key in dict.fromkeys(keys)]
        if not api_tags:
            return 0
        calls = 0
        for batch in chunks(list(dict.fromkeys(resource_ids)), TAG_RESOURCES_MAX):
            self._ec2.delete_tags(Resources=batch, Tags=api_tags)
            calls += 1
        return calls

    def deprecate(self, image_id: str, at: datetime) -> None:
        self._ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=at)

    def disable(self, image_id: str) -> None:
        self._ec2.disable_image(ImageId=image_id)

    def deregister(self, image_id: str) -> None:
        """Deregister the AMI; its snapshots stay (DeleteAssociatedSnapshots defaults to false)."""
        self._ec2.deregister_image(ImageId=image_id, DeleteAssociatedSnapshots=False)
