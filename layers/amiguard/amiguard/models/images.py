"""AMIs and snapshots as amiguard sees them, built from ``DescribeImages`` / ``DescribeSnapshots`` output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict


def tags_from_api(tags: Any) -> dict[str, str]:
    """``[{"Key": k, "Value": v}]`` as a dict; anything malformed is skipped, never fatal."""
    result: dict[str, str] = {}
    for tag in tags or []:
        if isinstance(tag, Mapping) and isinstance(tag.get("Key"), str):
            result[tag["Key"]] = str(tag.get("Value") or "")
    return result


def mapping_is_ebs(volume: Mapping[str, Any]) -> bool:
    """An ``Ebs`` block of a block device mapping that describes a volume (not an empty placeholder)."""
    return bool(volume) and any(key in volume for key in ("SnapshotId", "Encrypted", "VolumeSize"))


class Image(BaseModel):
    """One AMI's current state in one region."""

    model_config = ConfigDict(frozen=True)

    image_id: str
    region: str
    owner_id: str
    name: str | None = None
    description: str | None = None
    state: str = "available"
    public: bool = False
    tags: dict[str, str] = {}
    snapshot_ids: tuple[str, ...] = ()
    product_codes: tuple[str, ...] = ()
    # ``encrypted``: EC2 reports every EBS volume encrypted (an AMI with one unencrypted snapshot is not);
    # ``any_encrypted``: at least one is (copying it needs the key). ``unencrypted_snapshots``: the volumes EC2
    # reports unencrypted, by snapshot id (device name while a pending AMI has none yet).
    encrypted: bool = False
    any_encrypted: bool = False
    unencrypted_snapshots: tuple[str, ...] = ()
    virtualization_type: str | None = None  # hvm | paravirtual
    root_device_type: str | None = None  # ebs | instance-store
    last_launched_time: str | None = None  # DescribeImages LastLaunchedTime (absent: not launched since 2017)
    deregistration_protection: bool = False
    deprecation_time: str | None = None
    source_image_id: str | None = None
    source_region: str | None = None
    creation_date: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any], region: str) -> Image:
        mappings = item.get("BlockDeviceMappings") or []
        ebs = [mapping.get("Ebs") or {} for mapping in mappings]
        devices = [(mapping.get("Ebs") or {}, str(mapping.get("DeviceName") or "")) for mapping in mappings]
        volumes = [(volume, device) for volume, device in devices if mapping_is_ebs(volume)]
        # EC2 reports Encrypted on every EBS mapping; one that says nothing is not judged either way.
        unencrypted = tuple(
            str(volume.get("SnapshotId") or device) for volume, device in volumes if volume.get("Encrypted") is False
        )
        protection = str(item.get("DeregistrationProtection") or "").lower()
        return cls(
            image_id=item["ImageId"],
            region=region,
            owner_id=str(item.get("OwnerId", "")),
            name=item.get("Name"),
            description=item.get("Description"),
            state=item.get("State", "available"),
            public=bool(item.get("Public", False)),
            tags=tags_from_api(item.get("Tags")),
            snapshot_ids=tuple(volume["SnapshotId"] for volume in ebs if volume.get("SnapshotId")),
            product_codes=tuple(code.get("ProductCodeId", "") for code in item.get("ProductCodes") or []),
            encrypted=bool(volumes) and all(volume.get("Encrypted") is True for volume, _ in volumes),
            any_encrypted=any(volume.get("Encrypted") is True for volume, _ in volumes),
            unencrypted_snapshots=unencrypted,
            virtualization_type=item.get("VirtualizationType"),
            root_device_type=item.get("RootDeviceType"),
            last_launched_time=item.get("LastLaunchedTime"),
            deregistration_protection=protection.startswith("enabled"),
            deprecation_time=item.get("DeprecationTime"),
            source_image_id=item.get("SourceImageId"),
            source_region=item.get("SourceImageRegion"),
            creation_date=item.get("CreationDate"),
        )


class Snapshot(BaseModel):
    """One EBS snapshot's ownership and identity."""

    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    region: str
    owner_id: str
    encrypted: bool = False
    tags: dict[str, str] = {}

    @classmethod
    def from_api(cls, item: Mapping[str, Any], region: str) -> Snapshot:
        return cls(
            snapshot_id=item["SnapshotId"],
            region=region,
            owner_id=str(item.get("OwnerId", "")),
            encrypted=bool(item.get("Encrypted", False)),
            tags=tags_from_api(item.get("Tags")),
        )
