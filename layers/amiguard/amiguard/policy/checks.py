"""The checks a scan runs over every owned AMI: pluggable evaluators that reuse the functions' policy.

Used by ``amiguard scan`` and the ``sweeper`` function (what events missed or came before deployment).
A check is pure: it sees the facts the scan gathered (the image from DescribeImages, its launch
permissions when it asked for them, the region's public snapshots and image block public access state)
and returns :class:`Problem` s, each with the remedy enforce mode applies. No rule lives here: the
decisions are :mod:`amiguard.policy.sharing`'s (``assess_grants``, ``image_verdicts``, ...), exactly as
``public_guard`` makes them.

A check also says which facts it needs, so the scan makes no call nobody needs: DescribeImages tells
whether an AMI is public, so a public AMI's launch permissions are read only when they will be revoked;
public snapshots come from one DescribeSnapshots call per region, not one call per snapshot.

Adding a check (tags, replication) is a class with ``name``, ``needs`` and ``evaluate`` (or
``needs_launch_permissions`` and ``evaluate_image``) and one line in :func:`checks_for`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from amiguard.models.findings import Action
from amiguard.models.images import Image
from amiguard.models.settings import Settings
from amiguard.policy.sharing import (
    Grant,
    GrantKind,
    Verdict,
    assess_grants,
    block_public_access_verdict,
    image_verdicts,
    snapshot_verdicts,
)

PUBLIC = Grant(GrantKind.GROUP, "all")
BLOCKED = "block-new-sharing"
# A disabled AMI cannot be shared (EC2 makes it private when it is disabled); a failed one never existed.
NOT_SHAREABLE = frozenset({"disabled", "failed", "error", "invalid", "deregistered"})


class Fact(StrEnum):
    """Region-wide facts a check can ask the scan to read (one call per region each)."""

    BLOCK_PUBLIC_ACCESS = "block-public-access"
    PUBLIC_SNAPSHOTS = "public-snapshots"


class RemedyPort(Protocol):
    """The adapter methods remedies call: the ones ``public_guard`` uses (:class:`~amiguard.aws.images.Ec2Images`)."""

    def revoke_launch_permissions(self, image_id: str, grants: Sequence[Grant]) -> None: ...
    def revoke_create_volume_permissions(self, snapshot_id: str, grants: Sequence[Grant]) -> None: ...
    def block_new_public_sharing(self) -> None: ...


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

    def apply(self, images: RemedyPort) -> None: ...


@dataclass(frozen=True)
class RevokeLaunchPermissions:
    image_id: str
    grants: tuple[Grant, ...]
    done: Action = Action.REVOKED
    would: Action = Action.WOULD_REVOKE

    def apply(self, images: RemedyPort) -> None:
        images.revoke_launch_permissions(self.image_id, self.grants)


@dataclass(frozen=True)
class RevokeCreateVolumePermissions:
    snapshot_id: str
    grants: tuple[Grant, ...]
    done: Action = Action.REVOKED
    would: Action = Action.WOULD_REVOKE

    def apply(self, images: RemedyPort) -> None:
        images.revoke_create_volume_permissions(self.snapshot_id, self.grants)


@dataclass(frozen=True)
class BlockNewPublicSharing:
    done: Action = Action.REVOKED
    would: Action = Action.WOULD_REVOKE

    def apply(self, images: RemedyPort) -> None:
        images.block_new_public_sharing()


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

    ``inventory`` holds every listed region's owned AMIs, so checks that look across regions (replicas
    and their sources) need no call of their own.
    """

    settings: Settings
    account: str
    fix: bool
    inventory: Mapping[str, Sequence[Image]] = field(default_factory=dict)


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
    block_public_access: str | None = None
    public_snapshots: frozenset[str] | None = None


class ImageCheck(Protocol):
    """A check of one AMI at a time (run concurrently, one AMI per task)."""

    name: str

    def needs_launch_permissions(self, image: Image, context: CheckContext) -> bool: ...
    def evaluate_image(self, facts: ImageFacts, context: CheckContext) -> list[Problem]: ...


class RegionCheck(Protocol):
    """A check of a whole region (account-level settings, or resources shared by several AMIs)."""

    name: str

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


class PublicSnapshotCheck:
    """Public EBS snapshots behind owned AMIs (``public-snapshot``): anyone could copy the AMI's disks."""

    name = "public-snapshots"

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]:
        return frozenset({Fact.PUBLIC_SNAPSHOTS}) if any(image.snapshot_ids for image in images) else frozenset()

    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]:
        if not facts.public_snapshots:
            return []
        backing: dict[str, list[Image]] = {}
        for image in facts.images:
            for snapshot_id in image.snapshot_ids:
                if snapshot_id in facts.public_snapshots:
                    backing.setdefault(snapshot_id, []).append(image)
        problems: list[Problem] = []
        for snapshot_id, images in sorted(backing.items()):
            images.sort(key=lambda image: image.image_id)
            exposure = assess_grants(
                [PUBLIC], own_account=images[0].owner_id, trusted_principals=context.settings.trusted_principals
            )
            remedy = RevokeCreateVolumePermissions(snapshot_id, exposure.to_revoke)
            backed = [image.image_id for image in images]
            problems.extend(
                Problem(verdict, image=images[0], snapshot_id=snapshot_id, remedy=remedy)
                for verdict in snapshot_verdicts(snapshot_id, backed, exposure)
            )
        return problems


class BlockPublicAccessCheck:
    """Image block public access off in a region (``block-public-access-disabled``)."""

    name = "block-public-access"

    def needs(self, images: Sequence[Image], context: CheckContext) -> frozenset[Fact]:
        return frozenset({Fact.BLOCK_PUBLIC_ACCESS})

    def evaluate(self, facts: RegionFacts, context: CheckContext) -> list[Problem]:
        state = facts.block_public_access
        if state is None or state == BLOCKED:
            return []
        return [Problem(block_public_access_verdict(facts.region, state), remedy=BlockNewPublicSharing())]


@dataclass(frozen=True)
class Checks:
    """The checks one scan runs."""

    image: tuple[ImageCheck, ...]
    region: tuple[RegionCheck, ...]


def checks_for(settings: Settings) -> Checks:
    """Every check the settings call for. Tag and replication checks plug in here (issues 3 and 4)."""
    return Checks(
        image=(LaunchPermissionCheck(),),
        region=(PublicSnapshotCheck(), BlockPublicAccessCheck()),
    )
