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

from amiguard.models.settings import ACCOUNT_ID, IMAGE_ID, REGION
from amiguard.policy.screening import SNAPSHOT_ID
from amiguard_cli.sandbox.account import Alert, Delivery, Sandbox
from amiguard_cli.sandbox.cloudtrail import ACCOUNT


def load_events(path: Path) -> list[dict[str, Any]]:
    """The EventBridge events of a file: one event as it is, or every CloudTrail record of a trail file (as S3
    delivers them, ``.json.gz`` too, or bare records) wrapped as EventBridge delivers them.

    Raises ``ValueError`` naming the file when it cannot be read or holds no event.
    """
    from amiguard_cli.history import as_event, read_file

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        document = None  # not one plain JSON event: read it as history (gzip, trail files), which says what is wrong
    if isinstance(document, dict) and "detail-type" in document:
        return [document]
    history = read_file(path)
    if history.errors:
        raise ValueError(f"{path}: {history.errors[0].message}")
    if not history.records:
        skipped = ", ".join(f"{count} {reason}" for reason, count in history.skipped.items()) or "empty"
        raise ValueError(f"{path}: holds no CloudTrail record ({skipped})")
    return [as_event(record) for record in history.records]


def _rename(collection: dict[str, Any], old: str, new: str) -> None:
    resource = collection.pop(old)
    resource.id = new
    collection[new] = resource


def _seed_image(sandbox: Sandbox, region: str, image_id: str, tags: list[dict[str, str]] | None = None) -> None:
    """An AMI with exactly this id (and its instance-made snapshot) in ``region``."""
    from moto.ec2.models import ec2_backends

    ec2 = sandbox.internal_client("ec2", region)
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    created = ec2.create_image(InstanceId=instance, Name=f"replayed-{image_id}")["ImageId"]
    _rename(ec2_backends[sandbox.account][region].amis, created, image_id)
    if tags:
        ec2.create_tags(Resources=[image_id], Tags=tags)


def _event_tags(items: Any) -> list[dict[str, str]]:
    return [
        {"Key": str(item["key"]), "Value": str(item.get("value") or "")}
        for item in items or []
        if isinstance(item, dict) and "key" in item
    ]


def _seed_tag_enforcer_images(sandbox: Sandbox, region: str, detail: dict[str, Any]) -> list[str]:
    """The new AMI of CreateImage / CopyImage / RegisterImage (with the image tags the call gave it), and the
    AMIs a CreateTags names (with those tags) or a DeleteTags names (without them): state right after the call."""
    params = detail.get("requestParameters") or {}
    name = detail.get("eventName")
    seeded: list[str] = []
    if name in {"CreateImage", "CopyImage", "RegisterImage"}:
        new_image = (detail.get("responseElements") or {}).get("imageId")
        if isinstance(new_image, str) and IMAGE_ID.match(new_image):
            specs = (params.get("tagSpecificationSet") or {}).get("items") or []
            tags = [
                tag for spec in specs if spec.get("resourceType") == "image" for tag in _event_tags(spec.get("tags"))
            ]
            _seed_image(sandbox, region, new_image, tags)
            seeded.append(new_image)
    elif name in {"CreateTags", "DeleteTags"}:
        items = (params.get("resourcesSet") or {}).get("items") or []
        tags = _event_tags((params.get("tagSet") or {}).get("items")) if name == "CreateTags" else []
        for item in items:
            resource = item.get("resourceId") if isinstance(item, dict) else None
            if isinstance(resource, str) and IMAGE_ID.match(resource) and resource not in seeded:
                _seed_image(sandbox, region, resource, tags)
                seeded.append(resource)
    return seeded


def seed(sandbox: Sandbox, event: dict[str, Any]) -> list[str]:
    """Create the AMI / snapshot the event names, as it was right after the call. Returns what was seeded."""
    from moto.ec2.models import ec2_backends

    detail = event.get("detail") or {}
    region = str(detail.get("awsRegion") or event.get("region") or sandbox.home)
    params = detail.get("requestParameters") or {}
    image_id = params.get("imageId") or params.get("sourceImageId") or detail.get("ImageId")
    snapshot_id = params.get("snapshotId") or (detail.get("serviceEventDetails") or {}).get("snapshotId")
    if not REGION.match(region):
        return []
    ec2 = sandbox.internal_client("ec2", region)
    backend = ec2_backends[sandbox.account][region]
    seeded = []
    if detail.get("eventName") == "DisableImageBlockPublicAccess":
        sandbox.internal_client("ec2", region).disable_image_block_public_access()
        seeded.append(f"image block public access off in {region}")
    if detail.get("eventName") == "DisableSnapshotBlockPublicAccess":
        sandbox.internal_client("ec2", region).disable_snapshot_block_public_access()
        seeded.append(f"snapshot block public access off in {region}")
    if isinstance(image_id, str) and IMAGE_ID.match(image_id):
        # a CopyImage source lives in its own region (the event is recorded in the destination)
        source_region = str(params.get("sourceRegion") or "")
        home = source_region if image_id == params.get("sourceImageId") and REGION.match(source_region) else region
        _seed_image(sandbox, home, image_id)
        seeded.append(image_id)
        added = ((params.get("launchPermission") or {}).get("add") or {}).get("items") or []
        grants = [{key[:1].upper() + key[1:]: value for key, value in item.items()} for item in added]
        if grants:
            ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": grants})
    seeded.extend(_seed_tag_enforcer_images(sandbox, region, detail))
    if isinstance(snapshot_id, str) and SNAPSHOT_ID.match(snapshot_id):
        volume = ec2.create_volume(Size=8, AvailabilityZone=f"{region}a")["VolumeId"]
        created = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        _rename(backend.snapshots, created, snapshot_id)
        seeded.append(snapshot_id)
        added = ((params.get("createVolumePermission") or {}).get("add") or {}).get("items") or []
        if detail.get("serviceEventDetails"):  # another account used it: it was shared with that account
            added = [{"userId": str((detail.get("userIdentity") or {}).get("accountId"))}]
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
    parameters: dict[str, str] | None = None,
    on_delivery: Callable[[Delivery], None] | None = None,
) -> Replay:
    """For each event of the file: seed, put it on its region's bus, deliver it, collect the alerts.

    Each event gets a sandbox of its own (seeded with what that event names, in its own account and region), so
    a trail file's records do not see each other's seeds; ``backtest`` is the tool for long histories.
    """
    result = Replay([], [], [])
    mode = {"Mode": "enforce" if enforce else "audit"}  # a template parameter, as --parameter-overrides
    for event in load_events(path):
        with Sandbox(
            stack_regions=(stack_region_of(event),), account=account_of(event), parameters=(parameters or {}) | mode
        ) as sandbox:
            result.seeded.extend(seed(sandbox, event))
            sandbox.put_event(event)
            result.deliveries.extend(sandbox.run(on_delivery=on_delivery))
            result.alerts.extend(sandbox.alerts())
    return result
