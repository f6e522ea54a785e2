"""EC2 adapter for AMIs, their snapshots and the account's image block public access, in one region."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from amiguard.models.images import Image, Snapshot
from amiguard.policy.sharing import BLOCK_NEW_SHARING, BlockPublicAccess, Grant, GrantKind, grants_from_api

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Instances that still use their AMI (a terminated one does not); DescribeInstances takes 200 filter values.
IN_USE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]
FILTER_VALUES_MAX = 200


class Ec2Images:
    """AMIs and snapshots owned by this account in the client's region."""

    def __init__(self, ec2: EC2Client) -> None:
        self._ec2 = ec2
        self.region: str = ec2.meta.region_name

    def owned_image(self, image_id: str) -> Image | None:
        """The AMI if this account owns it; ``None`` if it is someone else's. Raises if it does not exist."""
        # A disabled AMI is private, but its snapshots may not be, and it can be enabled again: it is still ours.
        images = self._ec2.describe_images(ImageIds=[image_id], Owners=["self"], IncludeDisabled=True)["Images"]
        return Image.from_api(images[0], self.region) if images else None

    def owned_images(self) -> Iterator[Image]:
        """Every AMI this account owns in the region, disabled ones included, page by page (``Owners=self``)."""
        paginator = self._ec2.get_paginator("describe_images")
        pages = paginator.paginate(Owners=["self"], IncludeDisabled=True, PaginationConfig={"PageSize": 1000})
        for page in pages:
            for item in page["Images"]:
                yield Image.from_api(item, self.region)

    def launch_permissions(self, image_id: str) -> list[Grant]:
        response = self._ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
        return grants_from_api(response.get("LaunchPermissions", []))

    def revoke_launch_permissions(self, image_id: str, grants: Sequence[Grant]) -> None:
        """Remove exactly these grants; every other permission stays."""
        removals = [grant.as_api() for grant in grants]
        self._ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Remove": removals})  # type: ignore[typeddict-item]

    def owned_snapshot(self, snapshot_id: str) -> Snapshot | None:
        snapshots = self._ec2.describe_snapshots(SnapshotIds=[snapshot_id], OwnerIds=["self"])["Snapshots"]
        return Snapshot.from_api(snapshots[0], self.region) if snapshots else None

    def public_snapshot_ids(self) -> set[str]:
        """Ids of this account's public snapshots, in one paginated call instead of one per snapshot.

        ``RestorableByUserIds=all`` is how DescribeSnapshots names public snapshots.
        """
        paginator = self._ec2.get_paginator("describe_snapshots")
        pages = paginator.paginate(OwnerIds=["self"], RestorableByUserIds=["all"], PaginationConfig={"PageSize": 1000})
        return {snapshot["SnapshotId"] for page in pages for snapshot in page["Snapshots"]}

    def owned_snapshot_ids(self) -> list[str]:
        """Ids of every snapshot this account owns in the region (DescribeSnapshots ``OwnerIds=self``, paged)."""
        paginator = self._ec2.get_paginator("describe_snapshots")
        pages = paginator.paginate(OwnerIds=["self"], PaginationConfig={"PageSize": 1000})
        return [snapshot["SnapshotId"] for page in pages for snapshot in page["Snapshots"]]

    def create_volume_permissions(self, snapshot_id: str) -> list[Grant]:
        response = self._ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
        return grants_from_api(response.get("CreateVolumePermissions", []))

    def revoke_create_volume_permissions(self, snapshot_id: str, grants: Sequence[Grant]) -> None:
        # The OperationType form is as real as the structured one, and the only one moto implements.
        self._ec2.modify_snapshot_attribute(
            SnapshotId=snapshot_id,
            Attribute="createVolumePermission",
            OperationType="remove",
            GroupNames=[grant.value for grant in grants if grant.kind is GrantKind.GROUP],
            UserIds=[grant.value for grant in grants if grant.kind is GrantKind.USER_ID],
        )

    def images_backed_by(self, snapshot_id: str) -> list[str]:
        """Ids of owned AMIs whose block device mappings use this snapshot."""
        paginator = self._ec2.get_paginator("describe_images")
        pages = paginator.paginate(
            Owners=["self"],
            IncludeDisabled=True,
            Filters=[{"Name": "block-device-mapping.snapshot-id", "Values": [snapshot_id]}],
        )
        return sorted(image["ImageId"] for page in pages for image in page["Images"])

    def block_public_access_state(self) -> BlockPublicAccess:
        """``block-new-sharing`` or ``unblocked`` for this region, and who manages it (the account or a declarative
        policy of the organization)."""
        response = self._ec2.get_image_block_public_access_state()
        state, managed_by = response["ImageBlockPublicAccessState"], response.get("ManagedBy") or "account"
        return BlockPublicAccess(str(state), str(managed_by))

    def block_new_public_sharing(self) -> None:
        self._ec2.enable_image_block_public_access(ImageBlockPublicAccessState=BLOCK_NEW_SHARING)

    def snapshot_block_public_access_state(self) -> BlockPublicAccess:
        """``block-all-sharing``, ``block-new-sharing`` or ``unblocked`` for this region, and who manages it."""
        response = self._ec2.get_snapshot_block_public_access_state()
        return BlockPublicAccess(str(response["State"]), str(response.get("ManagedBy") or "account"))

    def block_new_public_snapshot_sharing(self) -> None:
        self._ec2.enable_snapshot_block_public_access(State=BLOCK_NEW_SHARING)

    def instances_by_image(self, image_ids: Sequence[str]) -> dict[str, int]:
        """How many instances not terminated use each of these AMIs (DescribeInstances, filter ``image-id``)."""
        counts: dict[str, int] = {}
        paginator = self._ec2.get_paginator("describe_instances")
        ids = sorted(set(image_ids))
        for start in range(0, len(ids), FILTER_VALUES_MAX):
            filters = [
                {"Name": "image-id", "Values": ids[start : start + FILTER_VALUES_MAX]},
                {"Name": "instance-state-name", "Values": IN_USE_STATES},
            ]
            for page in paginator.paginate(Filters=filters, PaginationConfig={"PageSize": 1000}):  # type: ignore[arg-type]
                for reservation in page["Reservations"]:
                    for instance in reservation.get("Instances", []):
                        image_id = instance.get("ImageId", "")
                        counts[image_id] = counts.get(image_id, 0) + 1
        return counts
