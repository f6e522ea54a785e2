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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from amiguard.models.findings import Action, FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.replicas import ReplicaRecord, ReplicaStatus
from amiguard.models.settings import IMAGE_ID, REGION, ReplicaCleanup
from amiguard.policy.sharing import Verdict

AMIGUARD_PREFIX = "amiguard:"
REPLICA_OF_TAG = "amiguard:replica-of"
SOURCE_IMAGE_TAG = "amiguard:source-image"
SOURCE_REGION_TAG = "amiguard:source-region"

APPROVED_VALUE = "true"
TAGS_PER_RESOURCE = 50  # EC2's limit of tags on one resource
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
# A copy in one of these states will never be usable: it is replaced by a new generation.
DEAD_REPLICA_STATES = frozenset({"failed", "deregistered", "error", "invalid"})
# A copy EC2 just accepted may not be visible to DescribeImages yet (eventual consistency).
VISIBILITY_GRACE = timedelta(minutes=10)
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


def copied_from(image: Image) -> tuple[str, str] | None:
    """The ``(region, image id)`` EC2 says ``image`` was copied from (``SourceImageRegion``/``SourceImageId``).

    ``None`` unless the source is in another region: a CreateImage AMI names the AMI its instance was launched
    from, in its own region, and amiguard's replicas are always copies from another region.
    """
    if image.source_image_id and image.source_region and image.source_region != image.region:
        return image.source_region, image.source_image_id
    return None


def source_candidates(image: Image) -> tuple[tuple[str, str], ...]:
    """The sources whose ledger rows might record ``image`` as their replica: EC2's word first, then the tag's."""
    candidates = [source for source in (copied_from(image), replica_source(image)) if source is not None]
    return tuple(dict.fromkeys(candidates))


class ReplicaStanding(StrEnum):
    """What amiguard may believe about an AMI being one of its replicas (never a tag alone)."""

    RECORDED = "recorded"  # the ledger records this very image as amiguard's copy: tracked, cleaned up
    COPY = "copy"  # EC2 says it is a copy of the source its tag names, but nothing records it: left alone
    FORGED = "forged"  # an amiguard:replica-of tag that neither the ledger nor EC2 backs: a finding, ignored
    NONE = "none"  # no claim at all


def replica_standing(image: Image, *, recorded: bool) -> ReplicaStanding:
    """``recorded``: a ledger row of one of :func:`source_candidates` names ``image`` as its replica."""
    if recorded:
        return ReplicaStanding.RECORDED
    if REPLICA_OF_TAG not in image.tags:
        return ReplicaStanding.NONE
    claimed = replica_source(image)
    if claimed is not None and claimed == copied_from(image):
        return ReplicaStanding.COPY
    return ReplicaStanding.FORGED


def is_replica(image: Image) -> bool:
    """A copy its tag and EC2 agree on (what a check without the ledger may trust): never copied as a source.

    A tag alone is anyone's to write, so it makes no replica; and a replica whose tag was removed is still
    recognised by the ledger (:class:`ReplicaStanding`).
    """
    return replica_standing(image, recorded=False) is ReplicaStanding.COPY


def replication_blocker(image: Image, account: str) -> Blocker | None:
    """Why this approved AMI must not be copied, or ``None`` when it may be."""
    if image.product_codes:
        return Blocker.PRODUCT_CODES
    if image.owner_id != account:
        return Blocker.ENCRYPTED_SHARED if image.encrypted or image.any_encrypted else Blocker.NOT_OWNED
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


@dataclass(frozen=True)
class CopyPlan:
    """Whether one destination needs a copy, and which generation (so which ``ClientToken``) it is."""

    copy: bool
    generation: int
    replaces: str | None = None  # the dead replica the new copy replaces


def plan_copy(row: ReplicaRecord | None, replica: Image | None, now: datetime) -> CopyPlan:
    """Reconcile a destination's ledger row with EC2: ``replica`` is what DescribeImages says of the row's
    replica id (``None``: not found, or not asked because the row records no live copy).

    A live row whose copy is still there needs nothing. A copy that failed, was deregistered by hand or is
    missing (a pending one only past :data:`VISIBILITY_GRACE`: EC2 is eventually consistent) is replaced by the next
    generation: a new ``ClientToken``, since EC2 would answer the old one with the dead copy's id. A row whose
    CopyImage never returned an id (retrying, failed at once, audit mode) keeps its generation and token.
    """
    if row is None:
        return CopyPlan(copy=True, generation=1)
    if row.replica_id is None:
        return CopyPlan(copy=True, generation=row.generation)
    if row.status in LIVE_STATUSES:
        if replica is not None and replica.state not in DEAD_REPLICA_STATES:
            return CopyPlan(copy=False, generation=row.generation)
        just_started = row.started_at is not None and now - row.started_at < VISIBILITY_GRACE
        if replica is None and row.status is ReplicaStatus.PENDING and just_started:
            return CopyPlan(copy=False, generation=row.generation)  # an available row's copy was seen: it is gone
    return CopyPlan(copy=True, generation=row.generation + 1, replaces=row.replica_id)


def client_token(source_region: str, source_image_id: str, destination_region: str, generation: int = 1) -> str:
    """CopyImage's idempotency token: the same source, destination and generation always give the same 64
    characters. A new generation (the previous copy failed or was deregistered) gets a new token: EC2 answers
    a reused token with the first copy's id, even when that copy is dead."""
    basis = f"amiguard:{source_region}/{source_image_id}->{destination_region}"
    if generation > 1:
        basis += f"#{generation}"  # generation 1 keeps the token of the copies made before generations existed
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
    generation: int = 1

    @property
    def replica_of(self) -> str:
        return replica_of_value(self.source_region, self.source_image_id)

    def as_api(self) -> dict[str, Any]:
        """The CopyImage parameters, exactly as sent."""
        params: dict[str, Any] = {
            "SourceRegion": self.source_region,
            "SourceImageId": self.source_image_id,
            "Name": self.name,
            "Description": self.description,
            "ClientToken": self.client_token,
            "Encrypted": True,
            "TagSpecifications": [
                {"ResourceType": "image", "Tags": [{"Key": key, "Value": value} for key, value in self.tags]},
                # The replica's snapshots carry the mark too: what scopes DeleteSnapshot in the cleanup grant.
                {"ResourceType": "snapshot", "Tags": [{"Key": REPLICA_OF_TAG, "Value": self.replica_of}]},
            ],
        }
        if self.kms_key_id:
            params["KmsKeyId"] = self.kms_key_id
        return params


def replica_tags(image: Image, approval_tag: str) -> tuple[tuple[str, str], ...]:
    """The replica's tags: the source's own tags, then amiguard's replica tags.

    Not ``CopyImageTags``: it would carry the approval tag (making each replica an approved source, a copy of a
    copy) and the source's ``amiguard:*`` tags (statements about the source, not the copy). ``aws:`` keys are
    EC2's own. At most 50 tags fit on an AMI: the replica tags always do.
    """
    own = [
        (key, value)
        for key, value in sorted(image.tags.items())
        if key != approval_tag and not key.startswith((AMIGUARD_PREFIX, "aws:"))
    ]
    marks = (
        (REPLICA_OF_TAG, replica_of_value(image.region, image.image_id)),
        (SOURCE_IMAGE_TAG, image.image_id),
        (SOURCE_REGION_TAG, image.region),
    )
    return (*own[: TAGS_PER_RESOURCE - len(marks)], *marks)


def copy_request(
    image: Image,
    destination_region: str,
    kms_keys: Mapping[str, str],
    *,
    approval_tag: str,
    generation: int = 1,
) -> CopyRequest:
    """How ``image`` is copied to ``destination_region``: same name, a description, encrypted, tagged
    (:func:`replica_tags`). Launch permissions are never copied by AWS."""
    description = image.description or f"DR replica of {replica_of_value(image.region, image.image_id)}"
    return CopyRequest(
        destination_region=destination_region,
        source_region=image.region,
        source_image_id=image.image_id,
        name=image.name or image.image_id,
        description=description[:DESCRIPTION_LIMIT],
        client_token=client_token(image.region, image.image_id, destination_region, generation),
        kms_key_id=kms_keys.get(destination_region),
        tags=replica_tags(image, approval_tag),
        generation=generation,
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
        # One id named a thousand times is one AMI to look at (CreateTags takes up to 1,000 resources).
        images = tuple(dict.fromkeys(r for r in amis if IMAGE_ID.match(r)))
        ignored = tuple(dict.fromkeys(r for r in amis if not IMAGE_ID.match(r)))
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


def cleanup_outcome(cleanup: ReplicaCleanup, *, enforcing: bool) -> tuple[str, Action]:
    """What the ``replica-cleanup`` finding says was done to the replicas of a deregistered source, and its action."""
    if cleanup is ReplicaCleanup.NONE:
        return "kept (ReplicaCleanup is none)", Action.NONE
    if enforcing:
        return cleanup_verb(cleanup), Action.DEPRECATED if cleanup is ReplicaCleanup.DEPRECATE else Action.DEREGISTERED
    return f"kept (audit mode: would be {cleanup_verb(cleanup)})", Action.NONE


# --- what a scan finds (the sweeper and ``amiguard scan``) ------------------------------------------------
#
# Events can be missed (EventBridge delivery is best effort) or predate the stack. A scan judges from the
# AMI lists and the replica ledger (see :class:`amiguard.policy.checks.ReplicationCheck`).

LIVE_REPLICA_STATES = frozenset({"available", "pending"})  # a failed or deregistered copy is no replica


def is_live_replica(image: Image) -> bool:
    """A replica that exists or is being made (a failed copy is retried, like a ``failed`` ledger row)."""
    return is_replica(image) and image.state in LIVE_REPLICA_STATES


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


def orphaned_replica_verdict(replica: Image, cleanup: ReplicaCleanup, *, source: str, recorded: bool) -> Verdict:
    """A DR replica whose source AMI no longer exists, and what ``ReplicaCleanup`` does with it.

    ``recorded``: amiguard made it (its ledger says so); a copy it did not make is reported, never cleaned up.
    """
    if cleanup is ReplicaCleanup.NONE:
        fate = "kept (ReplicaCleanup is none)"
    elif recorded:
        fate = f"to be {cleanup_verb(cleanup)}"
    else:
        fate = "kept: amiguard has no record of making it"
    return Verdict(
        FindingType.REPLICA_CLEANUP,
        Severity.LOW,
        f"DR replica {replica.image_id} in {replica.region} outlived its source {source}: {fate}.",
        {"source": source, "replica_id": replica.image_id, "cleanup": cleanup.value, "recorded": recorded},
    )


def forged_replica_tag_verdict(image: Image, consequence: str | None = None) -> Verdict:
    """An ``amiguard:replica-of`` tag neither the ledger nor EC2 backs: anyone may write it, so it is ignored.

    Such a tag could hide an approved AMI from replication, or point cleanup at someone else's AMI.
    """
    claim = image.tags.get(REPLICA_OF_TAG, "")
    ec2 = copied_from(image)
    made_from = (
        replica_of_value(image.source_region, image.source_image_id)
        if image.source_region and image.source_image_id
        else None
    )
    origin = f"EC2 says it was copied from {replica_of_value(*ec2)}" if ec2 else "EC2 says it is no copy"
    consequence = consequence or "it is treated as the AMI it is (copied if approved, never cleaned up as a replica)"
    return Verdict(
        FindingType.FORGED_AMIGUARD_TAG,
        Severity.HIGH,
        f"AMI {image.image_id} is tagged {REPLICA_OF_TAG}={claim!r}, but amiguard made no such replica "
        f"({origin}): the tag is ignored; {consequence}.",
        {"tag": REPLICA_OF_TAG, "value": claim, "ec2_source": made_from, "recorded": False},
    )
