"""``amiguard replay EVENT.json``: one recorded event through the template's routing and the real handlers.

The sandbox is seeded with what the event names (the AMI or snapshot, with the ids, account and region
the event carries, and the sharing the event says was added), so the handler sees the state AWS would
have had. Ids that are not real AWS ids (anonymised samples) are not seeded: the handler must drop them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amiguard.models.events import wrap_cloudtrail_record
from amiguard.models.settings import ACCOUNT_ID, IMAGE_ID, REGION
from amiguard.policy.screening import SNAPSHOT_ID
from amiguard.sandbox.account import Alert, Delivery, Sandbox
from amiguard.sandbox.cloudtrail import ACCOUNT


def load_event(path: Path) -> dict[str, Any]:
    """An EventBridge event from a file; a bare CloudTrail record is wrapped as EventBridge would."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if "detail-type" in document:
        return document
    return wrap_cloudtrail_record(document)


def _rename(collection: dict[str, Any], old: str, new: str) -> None:
    resource = collection.pop(old)
    resource.id = new
    collection[new] = resource


def seed(sandbox: Sandbox, event: dict[str, Any]) -> list[str]:
    """Create the AMI / snapshot the event names, as it was right after the call. Returns what was seeded."""
    from moto.ec2.models import ec2_backends

    detail = event.get("detail") or {}
    region = str(detail.get("awsRegion") or event.get("region") or sandbox.home)
    params = detail.get("requestParameters") or {}
    image_id = params.get("imageId") or params.get("sourceImageId") or detail.get("ImageId")
    snapshot_id = params.get("snapshotId")
    if not REGION.match(region):
        return []
    ec2 = sandbox.internal_client("ec2", region)
    backend = ec2_backends[sandbox.account][region]
    seeded = []
    if detail.get("eventName") == "DisableImageBlockPublicAccess":
        sandbox.block_public_access.state[region] = "unblocked"
        seeded.append(f"image block public access off in {region}")
    if isinstance(image_id, str) and IMAGE_ID.match(image_id):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        created = ec2.create_image(InstanceId=instance, Name=f"replayed-{image_id}")["ImageId"]
        _rename(backend.amis, created, image_id)
        seeded.append(image_id)
        added = ((params.get("launchPermission") or {}).get("add") or {}).get("items") or []
        grants = [{key[:1].upper() + key[1:]: value for key, value in item.items()} for item in added]
        if grants:
            ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": grants})
    if isinstance(snapshot_id, str) and SNAPSHOT_ID.match(snapshot_id):
        volume = ec2.create_volume(Size=8, AvailabilityZone=f"{region}a")["VolumeId"]
        created = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        _rename(backend.snapshots, created, snapshot_id)
        seeded.append(snapshot_id)
        added = ((params.get("createVolumePermission") or {}).get("add") or {}).get("items") or []
        users = [item["userId"] for item in added if "userId" in item]
        groups = [item["group"] for item in added if "group" in item]
        if users or groups:
            ec2.modify_snapshot_attribute(
                SnapshotId=snapshot_id,
                Attribute="createVolumePermission",
                OperationType="add",
                UserIds=users,
                GroupNames=groups,
            )
    return seeded


def account_of(event: dict[str, Any]) -> str:
    detail = event.get("detail") or {}
    account = str(detail.get("recipientAccountId") or event.get("account") or "")
    return account if ACCOUNT_ID.match(account) else ACCOUNT


def stack_region_of(event: dict[str, Any]) -> str:
    detail = event.get("detail") or {}
    region = str(detail.get("awsRegion") or event.get("region") or "")
    return region if REGION.match(region) else "us-east-1"


@dataclass
class Replay:
    seeded: list[str]
    deliveries: list[Delivery]
    alerts: list[Alert]


def replay(
    path: Path,
    *,
    enforce: bool = False,
    settings: dict[str, str] | None = None,
    on_delivery: Callable[[Delivery], None] | None = None,
) -> Replay:
    """Seed, put the event on its region's bus, deliver it, collect the alerts."""
    event = load_event(path)
    mode = {"AMIGUARD_MODE": "enforce" if enforce else "audit"}
    with Sandbox(
        stack_regions=(stack_region_of(event),), account=account_of(event), settings=(settings or {}) | mode
    ) as sandbox:
        seeded = seed(sandbox, event)
        sandbox.put_event(event)
        deliveries = sandbox.run(on_delivery=on_delivery)
        return Replay(seeded, deliveries, sandbox.alerts())
