"""AMI hygiene: unencrypted, legacy-platform, stale and unused AMIs, EBS snapshot block public access, and
another account's use of a shared snapshot (docs/checks.md).

Used by ``amiguard scan`` and the sweeper (every owned AMI), by tag_enforcer on CreateImage, CopyImage and
RegisterImage (unencrypted and legacy-platform AMIs, from DescribeImages), and by public_guard on
DisableSnapshotBlockPublicAccess and on the "AWS Service Event via CloudTrail" records
SharedSnapshotVolumeCreated / SharedSnapshotCopyInitiated. Pure: images, dates and settings in, verdicts out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from amiguard.models.findings import FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.settings import Settings
from amiguard.policy.screening import SnapshotUse
from amiguard.policy.sharing import (
    SNAPSHOT_BLOCK_PUBLIC_ACCESS,
    Grant,
    GrantKind,
    Verdict,
    block_public_access_verdict,
    is_trusted,
)

PARAVIRTUAL = "paravirtual"
INSTANCE_STORE = "instance-store"
SHARED_SNAPSHOT_EVENTS = frozenset({"SharedSnapshotVolumeCreated", "SharedSnapshotCopyInitiated"})
# Only a launchable AMI can be stale or unused; a disabled, failed or pending one is not yet (or no longer) one.
LIFECYCLE_STATES = frozenset({"available"})


def parse_time(value: str | None) -> datetime | None:
    """An EC2 ISO 8601 timestamp (``2024-01-31T12:00:00.000Z``) in UTC; ``None`` when absent or malformed."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def unencrypted_verdict(image: Image) -> Verdict | None:
    """``unencrypted-ami``: an EBS snapshot behind the AMI is not encrypted (anyone it is shared with, or who
    gets the snapshot, reads the disk; EBS encryption by default does not cover existing snapshots)."""
    if not image.unencrypted_snapshots:
        return None
    snapshots = list(image.unencrypted_snapshots)
    return Verdict(
        FindingType.UNENCRYPTED_AMI,
        Severity.MEDIUM,
        f"AMI {image.image_id} has {len(snapshots)} unencrypted EBS snapshot(s): {', '.join(snapshots)}.",
        {"unencrypted_snapshots": snapshots, "remedy": "copy it with CopyImage Encrypted=true, then retire this one"},
    )


def legacy_platform_verdict(image: Image) -> Verdict | None:
    """``ami-legacy-platform``: paravirtual or instance-store-backed (current instance types cannot launch a
    paravirtual AMI; EBS encryption and snapshot block public access do not cover instance-store images)."""
    reasons = []
    if image.virtualization_type == PARAVIRTUAL:
        reasons.append("paravirtual (current instance types launch HVM AMIs only)")
    if image.root_device_type == INSTANCE_STORE:
        reasons.append("instance-store-backed (no EBS encryption, no snapshot block public access)")
    if not reasons:
        return None
    return Verdict(
        FindingType.AMI_LEGACY_PLATFORM,
        Severity.LOW,
        f"AMI {image.image_id} is {' and '.join(reasons)}.",
        {"virtualization_type": image.virtualization_type, "root_device_type": image.root_device_type},
    )


@dataclass(frozen=True)
class Idle:
    """An AMI past a lifecycle threshold: which one, since when, and by how many days."""

    type: FindingType
    since: datetime
    days: int
    threshold: int


def idle_findings(image: Image, settings: Settings, now: datetime) -> list[Idle]:
    """``ami-stale`` (older than ``MaxImageAgeDays``) and ``ami-unused`` (not launched for ``UnusedImageDays``),
    each off at 0. An AMI with a deprecation time already has a lifecycle: neither applies."""
    if image.state not in LIFECYCLE_STATES or image.deprecation_time:
        return []
    created = parse_time(image.creation_date)
    found: list[Idle] = []
    if settings.max_image_age_days and created is not None:
        age = now - created
        if age > timedelta(days=settings.max_image_age_days):
            found.append(Idle(FindingType.AMI_STALE, created, age.days, settings.max_image_age_days))
    if settings.unused_image_days:
        # No LastLaunchedTime: never launched since EC2 began recording it (2017); count from its creation.
        last = parse_time(image.last_launched_time) or created
        if last is not None and now - last > timedelta(days=settings.unused_image_days):
            found.append(Idle(FindingType.AMI_UNUSED, last, (now - last).days, settings.unused_image_days))
    return found


def idle_verdict(image: Image, idle: Idle, *, instances: int, action: str) -> Verdict:
    """The finding for one :class:`Idle`; ``instances``: how many instances still use the AMI (never touched)."""
    if idle.type is FindingType.AMI_STALE:
        what = f"is {idle.days} days old (MaxImageAgeDays {idle.threshold}) and has no deprecation time"
    elif image.last_launched_time:
        what = f"was last launched {idle.days} days ago (UnusedImageDays {idle.threshold})"
    else:
        what = f"was never launched in the {idle.days} days since it was created (UnusedImageDays {idle.threshold})"
    used = f"; {instances} instance(s) still use it, so it is left as it is" if instances else ""
    return Verdict(
        idle.type,
        Severity.LOW,
        f"AMI {image.image_id} {what}{used}.",
        {
            "since": idle.since.isoformat(),
            "days": idle.days,
            "threshold_days": idle.threshold,
            "instances_in_use": instances,
            "action": action,
        },
    )


def snapshot_block_public_access_verdict(region: str, state: str, *, managed_by: str = "account") -> Verdict:
    """EBS snapshot block public access off in a region: any snapshot there can be made public again (the same
    decision as image block public access, declarative policies included)."""
    return block_public_access_verdict(region, state, managed_by=managed_by, kind=SNAPSHOT_BLOCK_PUBLIC_ACCESS)


def shared_snapshot_used_verdict(
    use: SnapshotUse, *, trusted_principals: Sequence[str], backed_images: Sequence[str], still_shared: bool | None
) -> Verdict:
    """Another account created a volume from (``SharedSnapshotVolumeCreated``) or copied
    (``SharedSnapshotCopyInitiated``) one of this account's snapshots: high unless that account is trusted.

    Only account ids can be told trusted here: an account inside a trusted organization or OU is not known to
    be one without asking AWS Organizations, so it counts as untrusted (list it in TrustedPrincipals).
    """
    used_by, snapshot_id, event_name = use.used_by, use.snapshot_id, use.event.detail.event_name
    grant = Grant(GrantKind.USER_ID, used_by)
    trusted = is_trusted(grant, own_account=use.event.account_id or "", trusted_principals=trusted_principals)
    verb = "created a volume from" if event_name == "SharedSnapshotVolumeCreated" else "copied"
    backs = f" (backs {', '.join(backed_images)})" if backed_images else ""
    who = "trusted account" if trusted else "untrusted account"
    now = {True: "", False: " It is no longer shared with that account.", None: " The snapshot no longer exists."}
    return Verdict(
        FindingType.SHARED_SNAPSHOT_USED,
        Severity.LOW if trusted else Severity.HIGH,
        f"{who.capitalize()} {used_by} {verb} snapshot {snapshot_id}{backs}: it has the data.{now[still_shared]}",
        {
            "used_by": used_by,
            "trusted": trusted,
            "event": event_name,
            "backed_images": list(backed_images),
            "still_shared": still_shared,
        },
    )
