"""Findings: the one shape for every alert and ledger row (docs/findings.md)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class FindingType(StrEnum):
    PUBLIC_SHARE = "public-share"
    UNTRUSTED_SHARE = "untrusted-share"
    PUBLIC_SNAPSHOT = "public-snapshot"
    BLOCK_PUBLIC_ACCESS_DISABLED = "block-public-access-disabled"
    # The event says an AMI or snapshot was made public or shared, but it was gone or unshared (not by amiguard)
    # when amiguard looked: nothing to revoke, yet it was exposed meanwhile.
    EXPOSURE_ENDED_BEFORE_CHECK = "exposure-ended-before-check"
    MISSING_TAGS = "missing-tags"
    INVALID_TAGS = "invalid-tags"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    REPLICATION_STARTED = "replication-started"
    REPLICATION_COMPLETE = "replication-complete"
    REPLICATION_FAILED = "replication-failed"
    NOT_REPLICABLE = "not-replicable"
    NOT_REPLICATED = "not-replicated"  # a scan found an approved AMI with no replica in a DR region
    APPROVAL_REMOVED = "approval-removed"
    REPLICA_CLEANUP = "replica-cleanup"
    IMAGE_FAILED = "image-failed"
    SWEEP_SUMMARY = "sweep-summary"
    FORGED_AMIGUARD_TAG = "forged-amiguard-tag"  # an amiguard:* tag its records (or EC2) contradict
    TAMPERED = "amiguard-tampered"  # someone changed one of amiguard's own rules, functions, roles or its trail
    COVERAGE_GAP = "amiguard-coverage-gap"  # a sweep found amiguard's deployment not as deployed (rule off, ...)
    # AMI hygiene and snapshot exposure checks (docs/checks.md)
    UNENCRYPTED_AMI = "unencrypted-ami"  # an EBS snapshot of the AMI is not encrypted
    AMI_STALE = "ami-stale"  # older than MaxImageAgeDays, no deprecation time set
    AMI_UNUSED = "ami-unused"  # not launched for UnusedImageDays
    SNAPSHOT_BLOCK_PUBLIC_ACCESS_DISABLED = "snapshot-block-public-access-disabled"
    AMI_LEGACY_PLATFORM = "ami-legacy-platform"  # paravirtual or instance-store-backed
    SHARED_SNAPSHOT_USED = "shared-snapshot-used"  # another account created a volume from or copied a snapshot
    # Organization mode: an account's amiguard member role could not be used (missing, refused, suspended account,
    # region not enabled, STS throttling past the deadline): amiguard cannot act there until it can.
    MEMBER_ROLE_UNAVAILABLE = "member-role-unavailable"


class Action(StrEnum):
    REVOKED = "revoked"
    WOULD_REVOKE = "would-revoke"
    TAGGED = "tagged"
    WOULD_TAG = "would-tag"
    COPIED = "copied"
    WOULD_COPY = "would-copy"
    DEPRECATED = "deprecated"
    DISABLED = "disabled"
    DEREGISTERED = "deregistered"
    NONE = "none"


class Finding(BaseModel):
    """What amiguard found, what it did about it, and the evidence. Alerts and ledger rows are findings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FindingType
    severity: Severity
    summary: str = Field(description="One sentence a security engineer reads first.")
    account: str
    # Organization mode: the account's name in the organization (Organizations DescribeAccount), where known.
    account_name: str | None = None
    region: str
    image_id: str | None = None
    image_name: str | None = None
    snapshot_id: str | None = None
    actor: str | None = None
    event_id: str | None = None
    event_time: datetime | None = None
    action: Action = Action.NONE
    evidence: dict[str, Any] = Field(default_factory=dict)
    # A duration: finite and never negative (NaN or Infinity in an alert is refused, not rendered).
    exposure_seconds: float | None = Field(None, ge=0, allow_inf_nan=False)
    detected_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # Enforce mode: the remedy was tried and failed (throttled, 5xx, no answer); the success that follows is news.
    fix_failed: bool = False

    @property
    def problem_fingerprint(self) -> str:
        """Same resource, same kind of problem, same evidence: the same problem, whatever was done about it."""
        return self._digest([self.type, self.account, self.region, self.image_id, self.snapshot_id, self.evidence])

    @property
    def fingerprint(self) -> str:
        """The finding's identity (ledger row, alert id, de-duplication): the problem, and whether its fix failed.

        A failed fix is its own identity because a person on call needs the change of outcome: "public, revoked"
        after "public, not fixed" (the fix was throttled, a retry made it) is news; the same problem found again
        (whatever was done or found already done about it) is a repeat.
        """
        return self._digest([self.problem_fingerprint, "fix-failed"]) if self.fix_failed else self.problem_fingerprint

    @staticmethod
    def _digest(parts: list[Any]) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def to_message(self) -> dict[str, Any]:
        """The JSON document published to SNS and stored in the ledger."""
        return self.model_dump(mode="json")
