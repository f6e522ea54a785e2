"""The checks a scan runs over every owned AMI: pluggable evaluators that reuse the functions' policy.

Used by ``amiguard scan`` and the ``sweeper`` function (what events missed or came before deployment).
A check is pure: it sees the facts the scan gathered (the image from DescribeImages, disabled AMIs included,
its launch permissions when it asked for them, the region's public snapshots, every owned snapshot's
create-volume permissions, and the image block public access state)
and returns :class:`Problem` s, each with the remedy enforce mode applies. No rule lives here: the
decisions are :mod:`amiguard.policy.sharing`'s (``assess_grants``, ``image_verdicts``, ...), exactly as
``public_guard`` makes them.

A check also says which facts it needs, so the scan makes no call nobody needs: DescribeImages tells
whether an AMI is public, so a public AMI's launch permissions are read only when they will be revoked;
public snapshots come from one DescribeSnapshots call per region, not one call per snapshot (who else a
snapshot is shared with, though, no bulk call tells: one DescribeSnapshotAttribute per owned snapshot); replicas are
found by their ``amiguard:replica-of`` tag in the AMI lists of the other regions (a region the scan was not
asked for is listed once, never searched per image).

Adding a check is a class with ``name``, ``regions_needed``, ``needs`` and ``evaluate`` (or
``needs_launch_permissions`` and ``evaluate_image``) and one line in :func:`checks_for`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from amiguard.models.findings import Action
from amiguard.models.images import Image
from amiguard.models.replicas import ReplicaRecord
from amiguard.models.settings import ReplicaCleanup, Settings, StaleImageAction, TagEscalation
from amiguard.policy.hygiene import (
    idle_findings,
    idle_verdict,
    legacy_platform_verdict,
    unencrypted_verdict,
)
from amiguard.policy.replication import (
    LIVE_STATUSES,
    REPLICA_OF_TAG,
    CopyRequest,
    Readiness,
    ReplicaStanding,
    cleanup_done,
    copied_from,
    copy_request,
    deprecate_at,
    destination_regions,
    forged_replica_tag_verdict,
    is_approved,
    is_live_replica,
    not_replicable_verdict,
    not_replicated_verdict,
    orphaned_replica_verdict,
    plan_copy,
    readiness,
    replica_of_value,
    replica_standing,
    replication_blocker,
    source_candidates,
)
from amiguard.policy.sharing import (
    IMAGE_BLOCK_PUBLIC_ACCESS,
    SNAPSHOT_BLOCK_PUBLIC_ACCESS,
    BlockPublicAccess,
    BlockPublicAccessKind,
    Grant,
    GrantKind,
    Verdict,
    assess_grants,
    block_public_access_verdict,
    image_verdicts,
    snapshot_verdicts,
)
from amiguard.policy.tagging import (
    ESCALATION_ACTIONS,
    SETTLED_BAD,
    VIOLATION,
    VIOLATION_SINCE,
    RecordChange,
    Step,
    ViolationChange,
    ViolationRecord,
    decide_escalation,
    deprecation_time,
    escalated_verdict,
    evaluate_required_tags,
    forged_tag_verdict,
    iso,
    tag_violation_verdict,
    violation_change,
)

PUBLIC = Grant(GrantKind.GROUP, "all")
# A disabled AMI cannot be shared (EC2 makes it private when it is disabled); a failed one never existed.
NOT_SHAREABLE = frozenset({"disabled", "failed", "error", "invalid", "deregistered"})


class Fact(StrEnum):
    """Region-wide facts a check can ask the scan to read (one call per region each)."""

    BLOCK_PUBLIC_ACCESS = "block-public-access"
    PUBLIC_SNAPSHOTS = "public-snapshots"
    # Every owned snapshot's create-volume permissions: one DescribeSnapshotAttribute per snapshot (no bulk
    # call tells who a snapshot is shared with), paced like the per-image calls.
    SNAPSHOT_SHARES = "snapshot-shares"
    VIOLATION_RECORDS = "violation-records"  # amiguard's record of the region's tag violations (one Query)
    SNAPSHOT_BLOCK_PUBLIC_ACCESS = "snapshot-block-public-access"  # GetSnapshotBlockPublicAccessState
    # How many instances use each stale or unused AMI (DescribeInstances, filter image-id): never touch those.
    IMAGES_IN_USE = "images-in-use"


class RemedyPort(Protocol):
    """The adapter methods remedies call: the ones ``public_guard`` uses (:class:`~amiguard.aws.images.Ec2Images`)."""

    def revoke_launch_permissions(self, image_id: str, grants: Sequence[Grant]) -> None: ...
    def revoke_create_volume_permissions(self, snapshot_id: str, grants: Sequence[Grant]) -> None: ...
    def block_new_public_sharing(self) -> None: ...
    def block_new_public_snapshot_sharing(self) -> None: ...


class ReplicaRemedyPort(Protocol):
    """The replication calls remedies make in one region (:class:`~amiguard.aws.replication.Ec2Replication`)."""

    def copy_image(self, request: CopyRequest) -> str: ...
    def deprecate(self, image_id: str, at: datetime) -> None: ...
    def deregister(self, image_id: str) -> None: ...


class TaggingRemedyPort(Protocol):
    """The tag calls remedies make in the scanned region (:class:`~amiguard.aws.tags.Ec2Tagging`)."""

    def add_tags(self, resource_ids: Iterable[str], tags: Mapping[str, str]) -> int: ...
    def instances_using(self, image_id: str) -> int: ...
    def deprecate(self, image_id: str, at: datetime) -> None: ...
    def disable(self, image_id: str) -> None: ...
    def deregister(self, image_id: str) -> None: ...


class ViolationRemedyPort(Protocol):
    """The record writes marking a violation (:class:`~amiguard.aws.violations.DynamoViolations`)."""

    def record(self, account: str, region: str, image_id: str, violation: str, since: datetime) -> ViolationRecord: ...
    def update(self, account: str, region: str, image_id: str, violation: str) -> None: ...


class RemedyPorts(Protocol):
    """Where remedies act: the scanned region's images and tags, and any region's replication calls."""

    @property
    def images(self) -> RemedyPort: ...

    @property
    def tagging(self) -> TaggingRemedyPort: ...

    @property
    def violations(self) -> ViolationRemedyPort: ...

    def replication(self, region: str) -> ReplicaRemedyPort: ...


class RemedyRefused(RuntimeError):
    """A remedy checked current state just before acting and must not act (the message says why)."""


class Remedy(Protocol):
    """What enforce mode does about a problem. Equal remedies are applied once."""

    @property
    def done(self) -> Action:
        """The finding's action once applied."""
        ...

    @property
    def would(self) -> Action:
        """The finding's action in audit mode (nothing changed)."""
        ...

    def apply(self, ports: RemedyPorts) -> None: ...


@dataclass(frozen=True)
class RevokeLaunchPermissions:
    image_id: str
    grants: tuple[Grant, ...]
    done: Action = Action.REVOKED
    would: Action = Action.WOULD_REVOKE

    def apply(self, ports: RemedyPorts) -> None:
        ports.images.revoke_launch_permissions(self.image_id, self.grants)


@dataclass(frozen=True)
class RevokeCreateVolumePermissions:
    snapshot_id: str
    grants: tuple[Grant, ...]
    done: Action = Action.REVOKED
    would: Action = Action.WOULD_REVOKE

    def apply(self, ports: RemedyPorts) -> None:
        ports.images.revoke_create_volume_permissions(self.snapshot_id, self.grants)


@dataclass(frozen=True)
class BlockNewPublicSharing:
    done: Action = Action.REVOKED
    would: Action = Action.WOULD_REVOKE

    def apply(self, ports: RemedyPorts) -> None:
        ports.images.block_new_public_sharing()


@dataclass(frozen=True)
class BlockNewPublicSnapshotSharing:
    """EBS snapshot block public access back on (``block-new-sharing``), as public_guard restores it."""

    done: Action = Action.REVOKED
    would: Action = Action.WOULD_REVOKE

    def apply(self, ports: RemedyPorts) -> None:
        ports.images.block_new_public_snapshot_sharing()


@dataclass(frozen=True)
class DeprecateIdleImage:
    """``StaleImageAction=deprecate`` on a stale or unused AMI. Asks first how many instances use it, and refuses
    when any does (one launched since the scan looked)."""

    image_id: str
    at: datetime
    done: Action = Action.DEPRECATED
    would: Action = Action.NONE  # opt-in and enforce-only, as TagEscalation: nothing to announce in audit mode

    def apply(self, ports: RemedyPorts) -> None:
        tagging = ports.tagging
        if tagging.instances_using(self.image_id):
            raise RemedyRefused(f"{self.image_id} not deprecated: instances launched from it are in use")
        tagging.deprecate(self.image_id, self.at)


@dataclass(frozen=True)
class CopyToDrRegion:
    """``dr_replicator``'s copy: the same request (deterministic ``ClientToken``), made in the destination."""

    request: CopyRequest
    done: Action = Action.COPIED
    would: Action = Action.WOULD_COPY

    def apply(self, ports: RemedyPorts) -> None:
        ports.replication(self.request.destination_region).copy_image(self.request)


@dataclass(frozen=True)
class CleanUpReplica:
    """What ``ReplicaCleanup`` does to a replica whose source is gone (deprecate or deregister)."""

    region: str
    image_id: str
    cleanup: ReplicaCleanup
    deprecate_at: datetime
    would: Action = Action.NONE  # as dr_replicator in audit mode: the replica is kept

    @property
    def done(self) -> Action:
        return Action.DEREGISTERED if self.cleanup is ReplicaCleanup.DEREGISTER else Action.DEPRECATED

    def apply(self, ports: RemedyPorts) -> None:
        replication = ports.replication(self.region)
        if self.cleanup is ReplicaCleanup.DEREGISTER:
            replication.deregister(self.image_id)
        else:
            replication.deprecate(self.image_id, self.deprecate_at)


@dataclass(frozen=True)
class MarkViolations:
    """tag_enforcer's enforce-mode answer to a violation: amiguard's record first (a new one starts the grace
    period), then the ``amiguard:violation`` / ``-since`` tags that mirror it, one CreateTags call for every AMI
    that gets the same tags."""

    account: str
    region: str
    image_ids: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]
    record: RecordChange
    violation: str
    since: datetime
    done: Action = Action.TAGGED
    would: Action = Action.WOULD_TAG

    def apply(self, ports: RemedyPorts) -> None:
        marked = list(self.image_ids)
        for image_id in self.image_ids:
            if self.record is RecordChange.CREATE:
                held = ports.violations.record(self.account, self.region, image_id, self.violation, self.since)
                if held.since != self.since.replace(microsecond=0):  # recorded first elsewhere: mirror that one
                    marked.remove(image_id)
                    mirror = {VIOLATION: held.violation, VIOLATION_SINCE: iso(held.since)}
                    ports.tagging.add_tags([image_id], mirror)
            elif self.record is RecordChange.UPDATE:
                ports.violations.update(self.account, self.region, image_id, self.violation)
        if marked:
            ports.tagging.add_tags(marked, dict(self.tags))


@dataclass(frozen=True)
class EscalateOverdue:
    """TagEscalation applied to an AMI past its grace period (counted from amiguard's record), as tag_enforcer's
    hourly sweep applies it.

    Deregistration asks first how many instances still use the AMI, and refuses (with
    :func:`~amiguard.policy.tagging.decide_escalation`'s reason) when any does.
    """

    image_id: str
    step: Step
    escalation: TagEscalation
    grace_hours: int
    now: datetime
    since: datetime
    image: Image = field(compare=False, hash=False)
    would: Action = Action.NONE

    @property
    def done(self) -> Action:
        return ESCALATION_ACTIONS[self.step]

    def apply(self, ports: RemedyPorts) -> None:
        tagging = ports.tagging
        if self.step is Step.DEPRECATE:
            tagging.deprecate(self.image_id, deprecation_time(self.now))
        elif self.step is Step.DISABLE:
            tagging.disable(self.image_id)
        elif self.step is Step.DEREGISTER:
            decision = decide_escalation(
                self.image,
                since=self.since,
                escalation=self.escalation,
                grace_hours=self.grace_hours,
                now=self.now,
                instances_in_use=tagging.instances_using(self.image_id),
            )
            if decision.step is not Step.DEREGISTER:
                raise RemedyRefused(f"{self.image_id} not deregistered: {decision.reason}")
            tagging.deregister(self.image_id)


@dataclass(frozen=True)
class Problem:
    """One finding to raise: the policy's verdict, on what, and the remedy (``None``: report only)."""

    verdict: Verdict
    image: Image | None = None
    snapshot_id: str | None = None
    remedy: Remedy | None = None


@dataclass(frozen=True)
class CheckContext:
    """What every check may know besides the facts: settings, whether the scan fixes, and the inventory.

    ``inventory`` holds every listed region's owned AMIs (the scanned regions and those a check asked
    for), so checks that look across regions (replicas and their sources) need no call of their own.
    A region missing from it could not be listed: checks that need it say nothing rather than guess.
    """

    settings: Settings
    account: str
    fix: bool
    inventory: Mapping[str, Sequence[Image]] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The ledger's replica rows by source ``(region, image id)``, for every source :func:`replica_sources_needed`
    # names (a source missing here could not be read). ``None``: the scan has no ledger.
    replica_records: Mapping[tuple[str, str], Mapping[str, ReplicaRecord]] | None = None


@dataclass(frozen=True)
class ImageFacts:
    """One AMI as the scan saw it. ``launch_permissions`` is ``None`` where no check asked for them."""

    image: Image
    launch_permissions: tuple[Grant, ...] | None = None


@dataclass(frozen=True)
class RegionFacts:
    """The region's owned AMIs and the region-wide facts the checks asked for (``None``: not read)."""

    region: str
    images: Sequence[Image]
    block_public_access: BlockPublicAccess | None = None  # None: not read
    public_snapshots: frozenset[str] | None = None
    snapshot_grants: Mapping[str, tuple[Grant, ...]] | None = None  # snapshot id -> its create-volume grants
    violations: Mapping[str, ViolationRecord] | None = None  # by image id; None: no record could be read
    snapshot_block_public_access: BlockPublicAccess | None = None
    images_in_use: Mapping[str, int] | None = None  # image id -> instances using it (asked-for AMIs only)


class ImageCheck(Protocol):
    """A check of one AMI at a time (run concurrently, one AMI per task)."""

    name: str

    def needs_launch_permissions(self, image: Image, context: CheckContext) -> bool: ...
    def evaluate_image(self, facts: ImageFacts, context: CheckContext) -> list[Problem]: ...


class RegionCheck(Protocol):
    """A check of a whole region (account-level settings, or resources shared by several AMIs)."""

    name: str

    def regions_needed(self, scanned: Mapping[str, Sequence[Image]], context: CheckContext) -> frozenset[str]:
        """Regions whose AMI list this check needs besides the scanned ones (listed once each)."""
        ...

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]: ...
    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]: ...


class LaunchPermissionCheck:
    """Public and untrusted launch permissions (``public-share``, ``untrusted-share``)."""

    name = "launch-permissions"

    def needs_launch_permissions(self, image: Image, context: CheckContext) -> bool:
        if image.state in NOT_SHAREABLE:
            return False
        if image.public and image.image_id not in context.settings.public_allowlist:
            # DescribeImages already says it is public: that finding needs no call. The explicit shares
            # behind it are read only when they are about to be revoked with it (anyone can launch a public
            # AMI, so they add no exposure until it is private again).
            return context.fix
        return True

    def evaluate_image(self, facts: ImageFacts, context: CheckContext) -> list[Problem]:
        image = facts.image
        if facts.launch_permissions is not None:
            grants: Sequence[Grant] = facts.launch_permissions
        else:
            grants = [PUBLIC] if image.public else []
        exposure = assess_grants(
            grants,
            own_account=image.owner_id,
            trusted_principals=context.settings.trusted_principals,
            public_allowed=image.image_id in context.settings.public_allowlist,
        )
        if not exposure.exposed:
            return []
        remedy = RevokeLaunchPermissions(image.image_id, exposure.to_revoke)
        return [Problem(verdict, image=image, remedy=remedy) for verdict in image_verdicts(image.image_id, exposure)]


def _backing(images: Sequence[Image]) -> dict[str, list[Image]]:
    """Snapshot id -> the owned AMIs it backs, sorted by AMI id."""
    backing: dict[str, list[Image]] = {}
    for image in sorted(images, key=lambda image: image.image_id):
        for snapshot_id in image.snapshot_ids:
            backing.setdefault(snapshot_id, []).append(image)
    return backing


class PublicSnapshotCheck:
    """Public EBS snapshots (``public-snapshot``), behind an owned AMI or not: anyone could copy the disks.

    One DescribeSnapshots call per region (``OwnerIds=self, RestorableByUserIds=all``) lists them all.
    """

    name = "public-snapshots"

    def regions_needed(self, scanned: Mapping[str, Sequence[Image]], context: CheckContext) -> frozenset[str]:
        return frozenset()

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]:
        return frozenset({Fact.PUBLIC_SNAPSHOTS})

    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]:
        if not facts.public_snapshots:
            return []
        backing = _backing(facts.images)
        problems: list[Problem] = []
        for snapshot_id in sorted(facts.public_snapshots):
            images = backing.get(snapshot_id, [])
            exposure = assess_grants(
                [PUBLIC], own_account=context.account, trusted_principals=context.settings.trusted_principals
            )
            remedy = RevokeCreateVolumePermissions(snapshot_id, exposure.to_revoke)
            backed = [image.image_id for image in images]
            problems.extend(
                Problem(verdict, image=images[0] if images else None, snapshot_id=snapshot_id, remedy=remedy)
                for verdict in snapshot_verdicts(snapshot_id, backed, exposure)
            )
        return problems


class SnapshotShareCheck:
    """EBS snapshots shared with untrusted accounts (``untrusted-share``), behind an owned AMI or not: that
    account can copy the disks as surely as anyone could from a public snapshot. Public grants are
    :class:`PublicSnapshotCheck`'s; this check reads every owned snapshot's create-volume permissions.
    """

    name = "snapshot-shares"

    def regions_needed(self, scanned: Mapping[str, Sequence[Image]], context: CheckContext) -> frozenset[str]:
        return frozenset()

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]:
        return frozenset({Fact.SNAPSHOT_SHARES})

    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]:
        if not facts.snapshot_grants:
            return []
        backing = _backing(facts.images)
        problems: list[Problem] = []
        for snapshot_id, grants in sorted(facts.snapshot_grants.items()):
            exposure = assess_grants(
                [grant for grant in grants if not grant.is_public],
                own_account=context.account,
                trusted_principals=context.settings.trusted_principals,
            )
            if not exposure.exposed:
                continue
            images = backing.get(snapshot_id, [])
            remedy = RevokeCreateVolumePermissions(snapshot_id, exposure.to_revoke)
            backed = [image.image_id for image in images]
            problems.extend(
                Problem(verdict, image=images[0] if images else None, snapshot_id=snapshot_id, remedy=remedy)
                for verdict in snapshot_verdicts(snapshot_id, backed, exposure)
            )
        return problems


class BlockPublicAccessCheck:
    """Image block public access off in a region (``block-public-access-disabled``)."""

    name = "block-public-access"

    def regions_needed(self, scanned: Mapping[str, Sequence[Image]], context: CheckContext) -> frozenset[str]:
        return frozenset()

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]:
        return frozenset({Fact.BLOCK_PUBLIC_ACCESS})

    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]:
        return _block_public_access_problems(
            facts.region, facts.block_public_access, IMAGE_BLOCK_PUBLIC_ACCESS, BlockNewPublicSharing()
        )


class SnapshotBlockPublicAccessCheck:
    """EBS snapshot block public access off in a region (``snapshot-block-public-access-disabled``)."""

    name = "snapshot-block-public-access"

    def regions_needed(self, scanned: Mapping[str, Sequence[Image]], context: CheckContext) -> frozenset[str]:
        return frozenset()

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]:
        return frozenset({Fact.SNAPSHOT_BLOCK_PUBLIC_ACCESS})

    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]:
        return _block_public_access_problems(
            facts.region,
            facts.snapshot_block_public_access,
            SNAPSHOT_BLOCK_PUBLIC_ACCESS,
            BlockNewPublicSnapshotSharing(),
        )


def _block_public_access_problems(
    region: str, access: BlockPublicAccess | None, kind: BlockPublicAccessKind, remedy: Remedy
) -> list[Problem]:
    """Image or EBS snapshot block public access off (``None``: not read, nothing to say)."""
    if access is None or access.blocked:
        return []
    verdict = block_public_access_verdict(region, access.state, managed_by=access.managed_by, kind=kind)
    # A declarative policy's setting cannot be changed from the account: reported, never "fixed".
    return [Problem(verdict, remedy=remedy if access.restorable else None)]


class ImageHygieneCheck:
    """Unencrypted (``unencrypted-ami``) and legacy-platform (``ami-legacy-platform``) AMIs, from what
    DescribeImages returned: no call of its own, nothing to fix automatically (a human re-builds the image)."""

    name = "image-hygiene"

    def regions_needed(self, scanned: Mapping[str, Sequence[Image]], context: CheckContext) -> frozenset[str]:
        return frozenset()

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]:
        return frozenset()

    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]:
        problems = []
        for image in sorted(facts.images, key=lambda image: image.image_id):
            if image.state in NOT_SHAREABLE:
                continue
            for verdict in (unencrypted_verdict(image), legacy_platform_verdict(image)):
                if verdict is not None:
                    problems.append(Problem(verdict, image=image))
        return problems


def idle_candidates(images: Sequence[Image], context: CheckContext) -> list[str]:
    """Ids of the AMIs past ``MaxImageAgeDays`` or ``UnusedImageDays``: whose instances the scan counts."""
    return sorted(i.image_id for i in images if idle_findings(i, context.settings, context.now))


class ImageLifecycleCheck:
    """Stale (``ami-stale``) and unused (``ami-unused``) AMIs; with ``StaleImageAction=deprecate`` the remedy
    sets their deprecation time (enforce mode), never on an AMI instances use (counted first, asked again just
    before acting)."""

    name = "image-lifecycle"

    def regions_needed(self, scanned: Mapping[str, Sequence[Image]], context: CheckContext) -> frozenset[str]:
        return frozenset()

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]:
        return frozenset({Fact.IMAGES_IN_USE}) if idle_candidates(images, context) else frozenset()

    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]:
        settings = context.settings
        problems = []
        for image in sorted(facts.images, key=lambda image: image.image_id):
            found = idle_findings(image, settings, context.now)
            if not found:
                continue
            in_use = facts.images_in_use.get(image.image_id, 0) if facts.images_in_use is not None else None
            remedy: Remedy | None = None
            action = settings.stale_image_action.value
            if settings.stale_image_action is StaleImageAction.DEPRECATE and in_use == 0:
                remedy = DeprecateIdleImage(image.image_id, deprecation_time(context.now))
            elif in_use is None:
                action = "none (instances using it could not be counted)"
            for idle in found:
                verdict = idle_verdict(image, idle, instances=in_use or 0, action=action)
                problems.append(Problem(verdict, image=image, remedy=remedy))
        return problems


class _Inventory:
    """Questions about the listed regions, answered from their AMI lists (``None``: region not listed)."""

    def __init__(self, inventory: Mapping[str, Sequence[Image]]) -> None:
        self._inventory = inventory
        self._ids: dict[str, frozenset[str]] = {}
        self._by_id: dict[str, dict[str, Image]] = {}
        self._replicated: dict[str, frozenset[str]] = {}

    def source_exists(self, region: str, image_id: str) -> bool | None:
        if region not in self._inventory:
            return None
        if region not in self._ids:
            listed = self._inventory[region]
            self._ids[region] = frozenset(i.image_id for i in listed if i.state != "deregistered")
        return image_id in self._ids[region]

    def image(self, region: str, image_id: str) -> Image | None:
        if region not in self._by_id:
            self._by_id[region] = {i.image_id: i for i in self._inventory.get(region, ())}
        return self._by_id[region].get(image_id)

    def replicated_in(self, region: str, source: Image) -> bool | None:
        """A live copy its tag and EC2 agree on is in ``region`` (whoever made it); ``None``: not listed."""
        if region not in self._inventory:
            return None
        if region not in self._replicated:
            live = (image for image in self._inventory[region] if is_live_replica(image))
            self._replicated[region] = frozenset(image.tags[REPLICA_OF_TAG] for image in live)
        return replica_of_value(source.region, source.image_id) in self._replicated[region]


def replica_sources_needed(inventory: Mapping[str, Sequence[Image]], settings: Settings) -> frozenset[tuple[str, str]]:
    """The sources whose ledger rows the replication check needs: every approved AMI (which copies it has) and
    every source an AMI claims, or EC2 says, it was copied from (is it the copy amiguard made)."""
    needed: set[tuple[str, str]] = set()
    for images in inventory.values():
        for image in images:
            needed.update(source_candidates(image))
            if settings.dr_regions and is_approved(image.tags, settings.approval_tag):
                needed.add((image.region, image.image_id))
    return frozenset(needed)


@dataclass(frozen=True)
class _Standing:
    standing: ReplicaStanding
    source: tuple[str, str] | None = None  # the source it is a replica of (recorded, or EC2's word for a copy)


class ReplicationCheck:
    """DR replication drift (``not-replicated``, ``not-replicable``, ``replica-cleanup``, ``forged-amiguard-tag``).

    Which AMI is a replica is the ledger's word (the copy amiguard made, by id), checked against the AMI lists;
    without a ledger (``amiguard scan`` given no table), a copy its tag and EC2's ``SourceImageId`` agree on. A
    tag alone is a claim: a ``forged-amiguard-tag`` finding, never a replica. An approved, copyable AMI needs a
    live replica in every DR region but its own: where the ledger's copy is missing or dead, the remedy is
    ``dr_replicator``'s copy of the next generation (same request builder, same ``ClientToken`` rule). A replica
    whose source no longer exists gets ``ReplicaCleanup``, applied only to a replica amiguard recorded.
    """

    name = "replication"

    def regions_needed(self, scanned: Mapping[str, Sequence[Image]], context: CheckContext) -> frozenset[str]:
        settings = context.settings
        needed: set[str] = set()
        for region, images in scanned.items():
            for image in images:
                if settings.dr_regions and is_approved(image.tags, settings.approval_tag):
                    needed.update(destination_regions(region, settings.dr_regions))
                needed.update(source[0] for source in source_candidates(image))
        return frozenset(needed - set(scanned))

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]:
        return frozenset()

    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]:
        settings = context.settings
        inventory = _Inventory(context.inventory)
        problems: list[Problem] = []
        for image in sorted(facts.images, key=lambda image: image.image_id):
            standing = self._standing(image, context)
            if standing is None:
                continue  # the ledger could not be read for it: the scan's errors say so
            if standing.standing is ReplicaStanding.FORGED:
                problems.append(Problem(forged_replica_tag_verdict(image), image=image))
            if standing.source is not None:
                problems.extend(self._orphan(image, standing, inventory, context))
            # A replica is never a source. With the ledger only a recorded copy is one: a tag on an approved copy
            # someone else made must not hide it from replication.
            replica = standing.standing is ReplicaStanding.RECORDED or (
                standing.standing is ReplicaStanding.COPY and context.replica_records is None
            )
            if not replica and settings.dr_regions and is_approved(image.tags, settings.approval_tag):
                problems.extend(self._unreplicated(image, inventory, context))
        return problems

    def _standing(self, image: Image, context: CheckContext) -> _Standing | None:
        records = context.replica_records
        if records is not None:
            for source in source_candidates(image):
                if source not in records:
                    return None
                row = records[source].get(image.region)
                if row is not None and row.replica_id == image.image_id:
                    return _Standing(ReplicaStanding.RECORDED, source)
        standing = replica_standing(image, recorded=False)
        return _Standing(standing, copied_from(image) if standing is ReplicaStanding.COPY else None)

    def _unreplicated(self, image: Image, inventory: _Inventory, context: CheckContext) -> list[Problem]:
        settings = context.settings
        blocker = replication_blocker(image, context.account)
        if blocker is not None:
            return [Problem(not_replicable_verdict(image, blocker), image=image)]
        if readiness(image) is not Readiness.COPY:
            return []  # pending: its "available" state change copies it; failed or gone: nothing to copy
        records = context.replica_records
        rows = None if records is None else records.get((image.region, image.image_id))
        if records is not None and rows is None:
            return []  # its rows could not be read
        problems = []
        for region in destination_regions(image.region, settings.dr_regions):
            copied = inventory.replicated_in(region, image)
            if copied is None:
                continue  # the region could not be listed: never called a gap
            generation = 1
            if rows is not None:
                row = rows.get(region)
                live = row is not None and row.replica_id is not None and row.status in LIVE_STATUSES
                replica = inventory.image(region, row.replica_id) if live and row and row.replica_id else None
                plan = plan_copy(row, replica, context.now)
                if not plan.copy or (row is None and copied):
                    continue  # the ledger's copy lives (or, unrecorded, a copy EC2 confirms does)
                generation = plan.generation
            elif copied:
                continue
            request = copy_request(
                image, region, settings.dr_kms_keys, approval_tag=settings.approval_tag, generation=generation
            )
            problems.append(
                Problem(not_replicated_verdict(image, request), image=image, remedy=CopyToDrRegion(request))
            )
        return problems

    def _orphan(
        self, replica: Image, standing: _Standing, inventory: _Inventory, context: CheckContext
    ) -> list[Problem]:
        cleanup = context.settings.replica_cleanup
        source = standing.source
        if source is None or inventory.source_exists(*source) is not False:
            return []
        if cleanup_done(replica, cleanup, context.now):
            return []
        # Only a replica amiguard recorded is cleaned up (with no ledger: one EC2 says is a copy of that source).
        trusted = standing.standing is ReplicaStanding.RECORDED or context.replica_records is None
        remedy = None
        if cleanup is not ReplicaCleanup.NONE and trusted:
            remedy = CleanUpReplica(replica.region, replica.image_id, cleanup, deprecate_at(context.now))
        verdict = orphaned_replica_verdict(replica, cleanup, source=replica_of_value(*source), recorded=trusted)
        return [Problem(verdict, image=replica, remedy=remedy)]


class TagCheck:
    """Required tags (``missing-tags``, ``invalid-tags``), forged violation tags (``forged-amiguard-tag``) and
    overdue violations (``escalated``), from the tags DescribeImages already returned and amiguard's record of
    the region's violations (one Query).

    The rules and the findings are :mod:`amiguard.policy.tagging`'s, exactly as tag_enforcer applies them:
    :func:`violation_change` says which record and tags tag_enforcer would write (the remedy: a new record starts
    the grace period), :func:`decide_escalation` what ``TagEscalation`` does once the recorded start is past it.
    Without the record (no ledger, or it could not be read) violations are reported only: neither marked (a
    mark amiguard cannot record would read as forged) nor escalated. With ``escalate=False`` (the sweeper:
    tag_enforcer's hourly sweep escalates in the stack) overdue AMIs are reported only.
    """

    name = "tags"

    def __init__(self, *, escalate: bool = True) -> None:
        self.escalate = escalate

    def regions_needed(self, scanned: Mapping[str, Sequence[Image]], context: CheckContext) -> frozenset[str]:
        return frozenset()

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]:
        return frozenset({Fact.VIOLATION_RECORDS}) if images else frozenset()

    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]:
        rules = context.settings.required_tags
        judged: list[tuple[Image, ViolationChange, ViolationRecord | None]] = []
        marks: dict[tuple[tuple[tuple[str, str], ...], RecordChange, str, datetime], list[Image]] = {}
        for image in sorted(facts.images, key=lambda image: image.image_id):
            if image.state in SETTLED_BAD:
                continue
            evaluation = evaluate_required_tags(image.tags, rules)
            if evaluation.compliant:
                continue  # stale (or forged) violation tags are tag_enforcer's hourly sweep's to clear
            record = facts.violations.get(image.image_id) if facts.violations is not None else None
            change = violation_change(image.tags, evaluation, context.now, record)
            judged.append((image, change, record))
            if facts.violations is not None and (change.add or change.record is not RecordChange.NONE):
                since = change.since or context.now
                key = (tuple(sorted(change.add.items())), change.record, change.violation or "", since)
                marks.setdefault(key, []).append(image)
        remedies: dict[str, MarkViolations] = {}
        for (tags, record_change, violation, since), images in marks.items():
            remedy = MarkViolations(
                context.account,
                facts.region,
                tuple(image.image_id for image in images),
                tags,
                record_change,
                violation,
                since,
            )
            remedies.update((image.image_id, remedy) for image in images)
        problems: list[Problem] = []
        for image, change, record in judged:
            mark = remedies.get(image.image_id)
            evaluation = evaluate_required_tags(image.tags, rules)
            if change.forged and facts.violations is not None:
                problems.append(Problem(forged_tag_verdict(image, change, record), image=image, remedy=mark))
            verdict = tag_violation_verdict(image, evaluation, rules, change)
            problems.append(Problem(verdict, image=image, remedy=mark))
            if record is not None:
                problems.extend(self._overdue(image, record, context))
        return problems

    def _overdue(self, image: Image, record: ViolationRecord, context: CheckContext) -> list[Problem]:
        settings = context.settings
        if settings.tag_escalation is TagEscalation.NONE:
            return []
        decision = decide_escalation(
            image,
            since=record.since,
            escalation=settings.tag_escalation,
            grace_hours=settings.tag_grace_hours,
            now=context.now,
        )
        if decision.step in {Step.WAIT, Step.DONE}:
            return []
        remedy: Remedy | None = None
        acted_by = "applied by tag_enforcer's hourly sweep"
        if decision.step is not Step.BLOCKED and self.escalate:
            acted_by = "applied with --fix"
            remedy = EscalateOverdue(
                image.image_id,
                decision.step,
                settings.tag_escalation,
                settings.tag_grace_hours,
                context.now,
                record.since,
                image=image,
            )
        verdict = escalated_verdict(image, decision.step, decision.reason, record, settings, acted_by=acted_by)
        return [Problem(verdict, image=image, remedy=remedy)]


@dataclass(frozen=True)
class Checks:
    """The checks one scan runs."""

    image: tuple[ImageCheck, ...]
    region: tuple[RegionCheck, ...]


def checks_for(settings: Settings, *, escalate: bool = True) -> Checks:
    """Every check a scan runs. ``escalate=False``: overdue tag violations are reported, not escalated."""
    return Checks(
        image=(LaunchPermissionCheck(),),
        region=(
            PublicSnapshotCheck(),
            SnapshotShareCheck(),
            BlockPublicAccessCheck(),
            SnapshotBlockPublicAccessCheck(),
            ImageHygieneCheck(),
            ImageLifecycleCheck(),
            ReplicationCheck(),
            TagCheck(escalate=escalate),
        ),
    )
