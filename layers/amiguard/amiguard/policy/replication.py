"""DR replication decisions: is an AMI approved and copyable, where must it go, and how is it copied.

Used by ``dr_replicator``, which is triggered by approvals (CreateTags adding the approval tag, or the tag
given at creation by CreateImage / CopyImage / RegisterImage), approval removal (DeleteTags, or CreateTags
setting another value), "EC2 AMI State Change" (``available``, ``failed``) and DeregisterImage; and by the
scan (``amiguard scan``, the ``sweeper``), which judges replication drift from the AMI lists of each region
(see the last section). Everything here is pure: the service reads current state (DescribeImages, the
ledger) and asks these functions what to do. No boto3.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from amiguard.models.findings import FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.replicas import ReplicaStatus
from amiguard.models.settings import IMAGE_ID, REGION, ReplicaCleanup
from amiguard.policy.sharing import Verdict

REPLICA_OF_TAG = "amiguard:replica-of"
SOURCE_IMAGE_TAG = "amiguard:source-image"
SOURCE_REGION_TAG = "amiguard:source-region"

APPROVED_VALUE = "true"
DESCRIPTION_LIMIT = 255  # EC2 rejects longer AMI descriptions
CLIENT_TOKEN_LIMIT = 64  # EC2 idempotency tokens: at most 64 ASCII characters

# One attempt per Lambda invocation of the event: the first try plus the function's MaximumRetryAttempts (2).
COPY_ATTEMPTS = 3

# CopyImage errors worth another try later: throttling, the concurrent-copy limit, EC2 having a bad moment.
RETRYABLE_COPY_ERRORS = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ResourceLimitExceeded",  # more than the allowed concurrent AMI copies into the region
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
    }
)

CREATION_EVENTS = frozenset({"CreateImage", "CopyImage", "RegisterImage"})
TAG_EVENTS = frozenset({"CreateTags", "DeleteTags"})


# A row in one of these states means "a replica exists or is being made": never copy again.
LIVE_STATUSES = frozenset({ReplicaStatus.PENDING, ReplicaStatus.AVAILABLE})
# Rows of these states still point at a replica that exists in the DR region.
CLEANABLE_STATUSES = frozenset({ReplicaStatus.PENDING, ReplicaStatus.AVAILABLE, ReplicaStatus.FAILED})


class Blocker(StrEnum):
    """Why an approved AMI cannot be copied (the finding's evidence)."""

    PRODUCT_CODES = "product-codes"
    ENCRYPTED_SHARED = "encrypted-shared-from-another-account"
    NOT_OWNED = "not-owned"


BLOCKER_EXPLANATIONS = {
    Blocker.PRODUCT_CODES: "it carries billing product codes (AWS Marketplace), which CopyImage does not copy",
    Blocker.ENCRYPTED_SHARED: "it is encrypted and shared from another account: copying needs that account's key",
    Blocker.NOT_OWNED: "it is owned by another account: replicate it from the owner's account",
}


class Readiness(StrEnum):
    COPY = "copy"
    WAIT = "wait"  # pending: the source's own "available" state change triggers the copy
    FAILED = "failed"
    UNUSABLE = "unusable"  # deregistered, disabled, ...: nothing to copy


def is_approved(tags: Mapping[str, str], approval_tag: str) -> bool:
    """The approval tag is present with value ``true`` (any case, surrounding blanks ignored)."""
    return tags.get(approval_tag, "").strip().lower() == APPROVED_VALUE


def replica_of_value(source_region: str, source_image_id: str) -> str:
    """The ``amiguard:replica-of`` tag value: ``region/ami-id`` of the source."""
    return f"{source_region}/{source_image_id}"


def parse_replica_of(value: str | None) -> tuple[str, str] | None:
    """``(region, image id)`` from an ``amiguard:replica-of`` value; ``None`` unless both are well-formed."""
    if not value or value.count("/") != 1:
        return None
    region, image_id = value.split("/")
    if not REGION.match(region) or not IMAGE_ID.match(image_id):
        return None
    return region, image_id


def replica_source(image: Image) -> tuple[str, str] | None:
    """The source ``(region, image id)`` when ``image`` is an amiguard replica."""
    return parse_replica_of(image.tags.get(REPLICA_OF_TAG))


def is_replica(image: Image) -> bool:
    """Any ``amiguard:replica-of`` tag marks a replica (even a malformed one: never copy a copy)."""
    return REPLICA_OF_TAG in image.tags


def replication_blocker(image: Image, account: str) -> Blocker | None:
    """Why this approved AMI must not be copied, or ``None`` when it may be."""
    if image.product_codes:
        return Blocker.PRODUCT_CODES
    if image.owner_id != account:
        return Blocker.ENCRYPTED_SHARED if image.encrypted else Blocker.NOT_OWNED
    return None


def readiness(image: Image) -> Readiness:
    if image.state == "available":
        return Readiness.COPY
    if image.state == "pending":
        return Readiness.WAIT
    if image.state == "failed":
        return Readiness.FAILED
    return Readiness.UNUSABLE


def destination_regions(source_region: str, dr_regions: Iterable[str]) -> tuple[str, ...]:
    """The DR regions a source in ``source_region`` is copied to (never its own), in configured order."""
    seen: list[str] = []
    for region in dr_regions:
        if region != source_region and region not in seen:
            seen.append(region)
    return tuple(seen)


def regions_to_copy(destinations: Iterable[str], statuses: Mapping[str, ReplicaStatus]) -> tuple[str, ...]:
    """Destinations with no live replica row (none yet, or an earlier attempt failed)."""
    return tuple(region for region in destinations if statuses.get(region) not in LIVE_STATUSES)


def client_token(source_region: str, source_image_id: str, destination_region: str) -> str:
    """CopyImage's idempotency token: the same source and destination always give the same 64 characters."""
    basis = f"amiguard:{source_region}/{source_image_id}->{destination_region}"
    return hashlib.sha256(basis.encode()).hexdigest()[:CLIENT_TOKEN_LIMIT]


@dataclass(frozen=True)
class CopyRequest:
    """One CopyImage call, made with the destination region's client."""

    destination_region: str
    source_region: str
    source_image_id: str
    name: str
    description: str
    client_token: str
    kms_key_id: str | None
    tags: tuple[tuple[str, str], ...]

    def as_api(self) -> dict[str, Any]:
        """The CopyImage parameters, exactly as sent."""
        params: dict[str, Any] = {
            "SourceRegion": self.source_region,
            "SourceImageId": self.source_image_id,
            "Name": self.name,
            "Description": self.description,
            "ClientToken": self.client_token,
            "Encrypted": True,
            "CopyImageTags": True,
            "TagSpecifications": [
                {"ResourceType": "image", "Tags": [{"Key": key, "Value": value} for key, value in self.tags]}
            ],
        }
        if self.kms_key_id:
            params["KmsKeyId"] = self.kms_key_id
        return params


def copy_request(image: Image, destination_region: str, kms_keys: Mapping[str, str]) -> CopyRequest:
    """How ``image`` is copied to ``destination_region``: same name, a description, encrypted, tagged.

    ``CopyImageTags`` carries the source's user tags (the approval tag, Owner, ...); the replica tags
    added here override any copied value of the same key. Launch permissions are never copied by AWS.
    """
    description = image.description or f"DR replica of {replica_of_value(image.region, image.image_id)}"
    return CopyRequest(
        destination_region=destination_region,
        source_region=image.region,
        source_image_id=image.image_id,
        name=image.name or image.image_id,
        description=description[:DESCRIPTION_LIMIT],
        client_token=client_token(image.region, image.image_id, destination_region),
        kms_key_id=kms_keys.get(destination_region),
        tags=(
            (REPLICA_OF_TAG, replica_of_value(image.region, image.image_id)),
            (SOURCE_IMAGE_TAG, image.image_id),
            (SOURCE_REGION_TAG, image.region),
        ),
    )


def is_retryable(error_code: str) -> bool:
    return error_code in RETRYABLE_COPY_ERRORS


@dataclass(frozen=True)
class CopyFailure:
    """What to do after CopyImage failed in one region."""

    retry: bool  # True: record ``retrying`` and have the event retried; False: ``failed`` and alert
    attempts: int


def after_copy_error(error_code: str, previous_attempts: int, max_attempts: int = COPY_ATTEMPTS) -> CopyFailure:
    """Bounded retries: transient errors are retried until ``max_attempts``; anything else fails at once."""
    attempts = previous_attempts + 1
    return CopyFailure(retry=is_retryable(error_code) and attempts < max_attempts, attempts=attempts)


# --- reading approval changes from CloudTrail ------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalChange:
    """AMIs whose approval a CloudTrail call may have granted or removed (current state still decides)."""

    granted: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = field(default=())  # malformed ids, for the log

    @property
    def empty(self) -> bool:
        return not self.granted and not self.removed


def _items(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        items = value.get("items")
        return list(items) if isinstance(items, list) else []
    return list(value) if isinstance(value, list) else []


def _tags(items: Iterable[Any]) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("key"), str):
            value = item.get("value")
            pairs.append((item["key"], None if value is None else str(value)))
    return pairs


def approval_change(
    event_name: str, params: Mapping[str, Any], response: Mapping[str, Any], approval_tag: str
) -> ApprovalChange:
    """Which AMIs a CreateTags / DeleteTags / CreateImage / CopyImage / RegisterImage call concerns."""
    if event_name in TAG_EVENTS:
        resources = [item.get("resourceId") for item in _items(params.get("resourcesSet")) if isinstance(item, Mapping)]
        amis = [r for r in resources if isinstance(r, str) and r.startswith("ami-")]
        images = tuple(r for r in amis if IMAGE_ID.match(r))
        ignored = tuple(r for r in amis if not IMAGE_ID.match(r))
        values = [value for key, value in _tags(_items(params.get("tagSet"))) if key == approval_tag]
        if not values or not images:
            return ApprovalChange(ignored=ignored)
        if event_name == "DeleteTags":
            return ApprovalChange(removed=images, ignored=ignored)
        if any((value or "").strip().lower() == APPROVED_VALUE for value in values):
            return ApprovalChange(granted=images, ignored=ignored)
        return ApprovalChange(removed=images, ignored=ignored)
    if event_name in CREATION_EVENTS:
        image_id = response.get("imageId")
        for spec in _items(params.get("tagSpecificationSet")):
            if not isinstance(spec, Mapping) or spec.get("resourceType") != "image":
                continue
            tags = _tags(_items(spec.get("tags") or spec.get("tagSet")))
            if any(key == approval_tag and (value or "").strip().lower() == APPROVED_VALUE for key, value in tags):
                if isinstance(image_id, str) and IMAGE_ID.match(image_id):
                    return ApprovalChange(granted=(image_id,))
                return ApprovalChange(ignored=(str(image_id),))
    return ApprovalChange()


# --- cleanup ---------------------------------------------------------------------------------------------


def deprecate_at(now: datetime) -> datetime:
    """The earliest DeprecateAt EC2 accepts: in the future, on a whole minute (EC2 rounds seconds)."""
    return now.replace(second=0, microsecond=0) + timedelta(minutes=2)


def cleanup_verb(cleanup: ReplicaCleanup) -> str:
    return {
        ReplicaCleanup.DEPRECATE: "deprecated",
        ReplicaCleanup.DEREGISTER: "deregistered",
        ReplicaCleanup.NONE: "kept",
    }[cleanup]


# --- what a scan finds (the sweeper and ``amiguard scan``) ------------------------------------------------
#
# Events can be missed (EventBridge delivery is best effort) or predate the stack. A scan judges from the
# AMI lists alone: a replica is an owned AMI tagged ``amiguard:replica-of`` in the destination region.

LIVE_REPLICA_STATES = frozenset({"available", "pending"})  # a failed or deregistered copy is no replica


def is_live_replica(image: Image) -> bool:
    """A replica that exists or is being made (a failed copy is retried, like a ``failed`` ledger row)."""
    return is_replica(image) and image.state in LIVE_REPLICA_STATES


def wants_replicas(image: Image, approval_tag: str, dr_regions: Iterable[str]) -> bool:
    """An approved source (not a replica) while replication is on: the AMIs a scan checks for replicas."""
    return bool(tuple(dr_regions)) and not is_replica(image) and is_approved(image.tags, approval_tag)


def missing_replica_regions(
    image: Image, dr_regions: Iterable[str], replicated_in: Callable[[str], bool | None]
) -> tuple[str, ...]:
    """Destinations of a ready, approved source where ``replicated_in(region)`` says there is no live replica.

    ``replicated_in`` answers ``None`` where it cannot tell (the region could not be listed): never a gap.
    """
    if readiness(image) is not Readiness.COPY:
        return ()  # pending: its "available" state change copies it; failed or gone: nothing to copy
    return tuple(
        region for region in destination_regions(image.region, dr_regions) if replicated_in(region) is False
    )


def source_gone(replica: Image, source_exists: Callable[[str, str], bool | None]) -> bool:
    """A replica whose source (from its ``amiguard:replica-of`` tag) no longer exists; ``False`` when unsure.

    ``source_exists(region, image id)`` answers ``None`` where the source region could not be listed.
    A malformed tag names no source: it is never called orphaned (amiguard did not write it).
    """
    source = replica_source(replica)
    if source is None:
        return False
    return source_exists(*source) is False


def parse_deprecation(value: str | None) -> datetime | None:
    """EC2's ``DeprecationTime`` (``2026-11-27T06:02:00.000Z``) as a time; ``None`` if absent or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cleanup_done(replica: Image, cleanup: ReplicaCleanup, now: datetime) -> bool:
    """The orphaned replica is already as ``cleanup`` leaves it (deprecated no later than amiguard would)."""
    if cleanup is ReplicaCleanup.DEREGISTER:
        return replica.state == "deregistered"
    if cleanup is ReplicaCleanup.DEPRECATE:
        deprecated = parse_deprecation(replica.deprecation_time)
        return deprecated is not None and deprecated <= deprecate_at(now)
    return False


def not_replicated_verdict(image: Image, request: CopyRequest) -> Verdict:
    """An approved AMI with no DR replica in one destination region."""
    return Verdict(
        FindingType.NOT_REPLICATED,
        Severity.MEDIUM,
        f"Approved AMI {image.image_id} has no DR replica in {request.destination_region}.",
        {
            "destination_region": request.destination_region,
            "client_token": request.client_token,
            "kms_key_id": request.kms_key_id,
        },
    )


def not_replicable_verdict(image: Image, blocker: Blocker) -> Verdict:
    """An approved AMI that cannot be copied (what ``dr_replicator`` reports when it is approved)."""
    return Verdict(
        FindingType.NOT_REPLICABLE,
        Severity.MEDIUM,
        f"Approved AMI {image.image_id} cannot be copied to DR regions: {BLOCKER_EXPLANATIONS[blocker]}",
        {"reason": blocker.value, "owner": image.owner_id, "product_codes": list(image.product_codes)},
    )


def orphaned_replica_verdict(replica: Image, cleanup: ReplicaCleanup) -> Verdict:
    """A DR replica whose source AMI no longer exists, and what ``ReplicaCleanup`` does with it."""
    source = replica.tags.get(REPLICA_OF_TAG, "?")
    fate = "kept (ReplicaCleanup is none)" if cleanup is ReplicaCleanup.NONE else f"to be {cleanup_verb(cleanup)}"
    return Verdict(
        FindingType.REPLICA_CLEANUP,
        Severity.LOW,
        f"DR replica {replica.image_id} in {replica.region} outlived its source {source}: {fate}.",
        {"source": source, "replica_id": replica.image_id, "cleanup": cleanup.value},
    )
