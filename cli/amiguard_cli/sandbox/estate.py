"""A planted estate of AMIs: what ``amiguard scan`` must find, made through the EC2 API.

Used by the scan's integration tests, ``scripts/bench_scan.py`` (2,000 AMIs on a moto server) and anyone
who wants an account with known problems. The categories are disjoint (an AMI is public, or shared with
an untrusted account, or with a trusted one, or private); a missing required tag cuts across them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from amiguard.models.replicas import ReplicaRecord, ReplicaStatus

UNTRUSTED_ACCOUNT = "999988887777"
TRUSTED_ACCOUNT = "111122223333"


@dataclass
class Estate:
    """What was planted, as (region, id) pairs: the truth a scan is judged against."""

    images: set[tuple[str, str]] = field(default_factory=set)
    public: set[tuple[str, str]] = field(default_factory=set)
    untrusted: set[tuple[str, str]] = field(default_factory=set)
    trusted: set[tuple[str, str]] = field(default_factory=set)
    missing_tag: set[tuple[str, str]] = field(default_factory=set)
    public_snapshots: set[tuple[str, str]] = field(default_factory=set)
    block_public_access_off: set[str] = field(default_factory=set)
    not_replicated: set[tuple[str, str]] = field(default_factory=set)  # approved, no replica in a DR region
    orphaned_replicas: set[tuple[str, str]] = field(default_factory=set)  # replicas whose source is gone
    unencrypted: set[tuple[str, str]] = field(default_factory=set)  # registered from an unencrypted snapshot
    legacy_platform: set[tuple[str, str]] = field(default_factory=set)  # paravirtual
    stale: set[tuple[str, str]] = field(default_factory=set)  # created long ago, no deprecation time
    unused: set[tuple[str, str]] = field(default_factory=set)  # not launched for long
    snapshot_block_public_access_off: set[str] = field(default_factory=set)


def _category(index: int, bounds: Sequence[tuple[str, int]]) -> str:
    """Deterministic and disjoint: the first AMIs of each region are public, the next untrusted, ..."""
    for kind, bound in bounds:
        if index < bound:
            return kind
    return "private"


def plant_estate(
    ec2_for: Callable[[str], Any],
    *,
    regions: Sequence[str],
    per_region: int,
    public: float = 0.02,
    untrusted: float = 0.05,
    trusted: float = 0.03,
    missing_tag: float = 0.30,
    required_tags: Sequence[str] = ("Owner", "CostCenter"),
    public_snapshots: int = 0,
    block_public_access_off: Sequence[str] = (),
    workers: int = 8,
) -> Estate:
    """Register ``per_region`` AMIs in each region and plant the problems; return what was planted.

    A ``missing_tag`` share of AMIs, spread evenly, lacks the last required tag; the first
    ``public_snapshots`` private AMIs of each region get their backing snapshot made public.
    """
    estate = Estate()
    counts = [("public", round(per_region * public)), ("untrusted", round(per_region * untrusted))]
    counts.append(("trusted", round(per_region * trusted)))
    bounds = [(kind, sum(count for _, count in counts[: position + 1])) for position, (kind, _) in enumerate(counts)]
    first_private = bounds[-1][1]

    def plant(job: tuple[str, int]) -> tuple[str, str, str, bool, str | None]:
        region, index = job
        ec2 = ec2_for(region)
        image_id = str(ec2.register_image(Name=f"estate-{region}-{index:05d}", RootDeviceName="/dev/xvda")["ImageId"])
        lacks_tag = int((index + 1) * missing_tag) > int(index * missing_tag)  # spread evenly, exact count
        tags = [{"Key": key, "Value": "planted"} for key in required_tags]
        if lacks_tag:
            tags = tags[:-1]
        tags.append({"Key": "Name", "Value": f"estate-{index}"})
        ec2.create_tags(Resources=[image_id], Tags=tags)
        kind = _category(index, bounds)
        grants = {"public": {"Group": "all"}, "untrusted": {"UserId": UNTRUSTED_ACCOUNT}}.get(kind)
        grants = grants or ({"UserId": TRUSTED_ACCOUNT} if kind == "trusted" else None)
        if grants:
            ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [grants]})
        snapshot = None
        if first_private <= index < first_private + public_snapshots:
            image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
            snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
            ec2.modify_snapshot_attribute(
                SnapshotId=snapshot, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"]
            )
        return region, image_id, kind, lacks_tag, snapshot

    jobs = [(region, index) for region in regions for index in range(per_region)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for region, image_id, kind, lacks_tag, snapshot in pool.map(plant, jobs):
            key = (region, image_id)
            estate.images.add(key)
            if kind != "private":
                getattr(estate, kind).add(key)
            if lacks_tag:
                estate.missing_tag.add(key)
            if snapshot:
                estate.public_snapshots.add((region, snapshot))
    for region in block_public_access_off:
        ec2_for(region).disable_image_block_public_access()
        estate.block_public_access_off.add(region)
    return estate


def plant_replication_drift(
    ec2_for: Callable[[str], Any],
    estate: Estate,
    *,
    home: str,
    dr_region: str,
    approval_tag: str = "amiguard:approved",
    required_tags: Sequence[str] = ("Owner", "CostCenter"),
    record_replica: Callable[[ReplicaRecord], object] | None = None,
) -> Estate:
    """An approved AMI in ``home`` that was never copied to ``dr_region``, and a replica in ``dr_region`` of an
    AMI since deregistered: a real copy (EC2 reports its source), tagged as amiguard tags its replicas (both
    carry every required tag: they plant one problem each) and, with ``record_replica``, recorded in the ledger as
    dr_replicator records its copies (without that record no remedy touches it: a tag alone proves nothing)."""
    tags = [{"Key": key, "Value": "planted"} for key in required_tags]
    ec2 = ec2_for(home)
    approved = str(ec2.register_image(Name="estate-approved-golden", RootDeviceName="/dev/xvda")["ImageId"])
    ec2.create_tags(Resources=[approved], Tags=[*tags, {"Key": approval_tag, "Value": "true"}])
    retired = str(ec2.register_image(Name="estate-retired-golden", RootDeviceName="/dev/xvda")["ImageId"])
    dr = ec2_for(dr_region)
    marks = [*tags, {"Key": "amiguard:replica-of", "Value": f"{home}/{retired}"}]
    orphan = str(
        dr.copy_image(
            SourceRegion=home,
            SourceImageId=retired,
            Name="estate-orphaned-replica",
            TagSpecifications=[{"ResourceType": "image", "Tags": marks}],
        )["ImageId"]
    )
    ec2.deregister_image(ImageId=retired)
    if record_replica is not None:
        record_replica(
            ReplicaRecord(
                source_region=home,
                source_image_id=retired,
                destination_region=dr_region,
                status=ReplicaStatus.AVAILABLE,
                replica_id=orphan,
            )
        )
    estate.images |= {(home, approved), (dr_region, orphan)}
    estate.not_replicated.add((home, approved))
    estate.orphaned_replicas.add((dr_region, orphan))
    return estate


def plant_hygiene(
    ec2_for: Callable[[str], Any],
    estate: Estate,
    *,
    region: str,
    account: str,
    stale_days: int,
    unused_days: int,
    snapshot_block_public_access_off: Sequence[str] = (),
    required_tags: Sequence[str] = ("Owner", "CostCenter"),
) -> Estate:
    """One AMI per hygiene problem in ``region`` (each registered from a snapshot of its own, every required tag
    carried): unencrypted, paravirtual, older than ``stale_days`` and last launched more than ``unused_days``
    ago; and EBS snapshot block public access turned off in the regions given.

    No API makes an old AMI: its creation and last launch dates are written into moto's record of it.
    """
    from datetime import UTC, datetime, timedelta

    from moto.ec2.models import ec2_backends

    ec2 = ec2_for(region)
    tags = [{"Key": key, "Value": "planted"} for key in required_tags]

    def register(name: str, *, encrypted: bool = True, virtualization: str = "hvm") -> str:
        volume = ec2.create_volume(Size=8, AvailabilityZone=f"{region}a", Encrypted=encrypted)["VolumeId"]
        snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        mapping = [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot}}]
        image_id = str(
            ec2.register_image(
                Name=name, RootDeviceName="/dev/xvda", VirtualizationType=virtualization, BlockDeviceMappings=mapping
            )["ImageId"]
        )
        ec2.create_tags(Resources=[image_id], Tags=tags)
        estate.images.add((region, image_id))
        return image_id

    estate.unencrypted.add((region, register("estate-unencrypted", encrypted=False)))
    estate.legacy_platform.add((region, register("estate-paravirtual", virtualization="paravirtual")))
    now = datetime.now(UTC)
    stale = register("estate-stale")
    unused = register("estate-unused")
    amis = ec2_backends[account][region].amis

    def backdate(image_id: str, *, created: int, launched: int) -> None:
        ami: Any = amis[image_id]  # moto's AMI has no LastLaunchedTime of its own; set, DescribeImages returns it
        ami.creation_date = now - timedelta(days=created)
        ami.last_launched_time = (now - timedelta(days=launched)).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    backdate(stale, created=stale_days + 30, launched=1)
    backdate(unused, created=unused_days + 30, launched=unused_days + 10)
    estate.stale.add((region, stale))
    estate.unused.add((region, unused))
    if stale_days < unused_days + 30:
        estate.stale.add((region, unused))  # as old as that, it is stale too
    for off in snapshot_block_public_access_off:
        ec2_for(off).disable_snapshot_block_public_access()
        estate.snapshot_block_public_access_off.add(off)
    return estate
