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
    encrypted: bool = False
    deregistration_protection: bool = False
    deprecation_time: str | None = None
    source_image_id: str | None = None
    source_region: str | None = None
    creation_date: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any], region: str) -> Image:
        mappings = item.get("BlockDeviceMappings") or []
        ebs = [mapping.get("Ebs") or {} for mapping in mappings]
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
            encrypted=any(bool(volume.get("Encrypted")) for volume in ebs),
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
