"""The finding catalogue: what every finding type means, in one place.

One entry per :class:`~amiguard.models.findings.FindingType`: its usual severity, a one-line title, what it
means, the remedy (applied by amiguard, or asked of a human), its AWS Security Finding Format ``Types``, and
the paths that raise it. The alert text (SNS), Slack messages, the ledger, Security Hub and docs/findings.md
(``scripts/gen_docs.py``) all read it; adding a finding type means adding one entry here (a test fails when a
type has none, and when docs/findings.md drifts from it).

Pure data: no I/O, importable by every layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from amiguard.models.findings import Action, Finding, FindingType, Severity


class RaisedOn(StrEnum):
    """The paths that raise findings."""

    EVENT = "event"  # a function reacting to an EventBridge event (CloudTrail, AMI state change)
    SCAN = "scan"  # `amiguard scan`
    SWEEPER = "sweeper"  # a scheduled sweep: the sweeper, or tag_enforcer's hourly pass over violations


class Remedy(StrEnum):
    """Who deals with a finding."""

    AMIGUARD = "amiguard"  # amiguard remediates it (in enforce mode)
    HUMAN = "human"  # amiguard reports it; a human decides
    NONE = "none"  # a record: nothing to remedy


class Compliance(StrEnum):
    """ASFF ``Compliance.Status`` of a finding as raised (before any remedy took effect)."""

    FAILED = "FAILED"
    WARNING = "WARNING"
    PASSED = "PASSED"


# ASFF ``Types`` are ``namespace/category/classifier``; the namespaces and categories are AWS's own.
_BEST_PRACTICES = "Software and Configuration Checks/AWS Security Best Practices"
_DATA_EXPOSURE = "Effects/Data Exposure"
_POLICY = "Software and Configuration Checks/Policy"
_DEFENSE_EVASION = "TTPs/Defense Evasion"

EVENT, SCAN, SWEEPER = RaisedOn.EVENT, RaisedOn.SCAN, RaisedOn.SWEEPER


@dataclass(frozen=True)
class CatalogueEntry:
    """What one finding type means, and what is done about it."""

    type: FindingType
    severity: Severity  # the usual one; ``severity_note`` says when a finding differs
    title: str  # one line, no trailing full stop
    meaning: str
    remedy: str
    remedied_by: Remedy
    asff_types: tuple[str, ...]
    raised_on: frozenset[RaisedOn]
    raised_by: tuple[str, ...]  # functions (and `scan`) that raise it, as docs/functions.md names them
    compliance: Compliance = Compliance.FAILED
    severity_note: str = ""
    # Imported into Security Hub as a finding of its own (a report about amiguard's run is not, nor is a
    # ``resolved``, which closes the violation's finding instead).
    security_hub: bool = True
    # Finding types this one closes for the same resource (a ``resolved`` violation closes the violation).
    closes: tuple[FindingType, ...] = ()
    docs: str = ""  # a page of docs/ with more

    @property
    def severity_text(self) -> str:
        return f"{self.severity.value} ({self.severity_note})" if self.severity_note else self.severity.value


_ENTRIES = (
    CatalogueEntry(
        FindingType.PUBLIC_SHARE,
        Severity.CRITICAL,
        "AMI shared publicly",
        "An AMI's launch permission was granted to everyone (`group: all`) and the AMI is not in "
        "`PublicAllowlist`: any AWS account can launch it and copy what is on its volumes.",
        "amiguard removes the public grant (enforce mode); in audit mode a human removes it.",
        Remedy.AMIGUARD,
        (f"{_BEST_PRACTICES}/Public AMI", f"{_DATA_EXPOSURE}/Public AMI"),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("public_guard", "sweeper", "scan"),
    ),
    CatalogueEntry(
        FindingType.UNTRUSTED_SHARE,
        Severity.HIGH,
        "AMI or snapshot shared with an untrusted principal",
        "An AMI or snapshot is shared with an account, organization or OU outside `TrustedPrincipals`.",
        "amiguard removes those grants and keeps the trusted ones (enforce mode).",
        Remedy.AMIGUARD,
        (f"{_BEST_PRACTICES}/AMI Shared Outside Trusted Accounts", f"{_DATA_EXPOSURE}/Untrusted Share"),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("public_guard", "sweeper", "scan"),
    ),
    CatalogueEntry(
        FindingType.PUBLIC_SNAPSHOT,
        Severity.CRITICAL,
        "EBS snapshot shared publicly",
        "An EBS snapshot (behind an AMI or not) can be copied by anyone: its create-volume permission "
        "includes `group: all`.",
        "amiguard removes the public create-volume permission (enforce mode).",
        Remedy.AMIGUARD,
        (f"{_BEST_PRACTICES}/Public EBS Snapshot", f"{_DATA_EXPOSURE}/Public EBS Snapshot"),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("public_guard", "sweeper", "scan"),
    ),
    CatalogueEntry(
        FindingType.BLOCK_PUBLIC_ACCESS_DISABLED,
        Severity.CRITICAL,
        "Image block public access turned off",
        "Image block public access was turned off in a region: AMIs there can be made public again.",
        "amiguard turns it back on (`block-new-sharing`, enforce mode).",
        Remedy.AMIGUARD,
        (f"{_BEST_PRACTICES}/Image Block Public Access Disabled",),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("public_guard", "sweeper", "scan"),
    ),
    CatalogueEntry(
        FindingType.EXPOSURE_ENDED_BEFORE_CHECK,
        Severity.HIGH,
        "AMI or snapshot was exposed, then unshared before amiguard looked",
        "An event says an AMI or snapshot was made public or shared, but it was private again (or gone) "
        "before amiguard looked, and amiguard's ledger holds no report of it: anyone could have copied "
        "it meanwhile.",
        "Nothing left to revoke: amiguard records who did it; a human finds out whether it was copied.",
        Remedy.HUMAN,
        (f"{_DATA_EXPOSURE}/Transient Public Share",),
        frozenset({EVENT}),
        ("public_guard",),
        compliance=Compliance.WARNING,
        severity_note="info when only named accounts were granted",
        docs="security-model.md",
    ),
    CatalogueEntry(
        FindingType.MISSING_TAGS,
        Severity.MEDIUM,
        "AMI lacks required tags",
        "A new or changed AMI lacks tags that `RequiredTags` requires.",
        "amiguard marks it (`amiguard:violation`, `amiguard:violation-since`) and escalates after "
        "`TagGraceHours` as `TagEscalation` says; the owner adds the tags.",
        Remedy.HUMAN,
        (f"{_POLICY}/Required Tags Missing",),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("tag_enforcer", "sweeper", "scan"),
        docs="tag-violations.md",
    ),
    CatalogueEntry(
        FindingType.INVALID_TAGS,
        Severity.MEDIUM,
        "AMI has a tag value its rule does not allow",
        "A required tag's value breaks its rule in `RequiredTags` (allowed values or pattern).",
        "As `missing-tags`: marked, escalated after the grace period; the owner corrects the value.",
        Remedy.HUMAN,
        (f"{_POLICY}/Required Tags Invalid",),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("tag_enforcer", "sweeper", "scan"),
        docs="tag-violations.md",
    ),
    CatalogueEntry(
        FindingType.RESOLVED,
        Severity.INFO,
        "Tag violation fixed",
        "An AMI's tag violation was fixed: every required tag is now present and valid.",
        "amiguard removes the violation tags; Security Hub's violation finding is closed.",
        Remedy.NONE,
        (f"{_POLICY}/Required Tags Missing",),
        frozenset({EVENT, SWEEPER}),
        ("tag_enforcer", "sweeper"),
        compliance=Compliance.PASSED,
        security_hub=False,  # not a finding of its own: it closes the violation's
        closes=(FindingType.MISSING_TAGS, FindingType.INVALID_TAGS, FindingType.ESCALATED),
    ),
    CatalogueEntry(
        FindingType.ESCALATED,
        Severity.MEDIUM,
        "Tag violation outlived its grace period",
        "An AMI still violates the tag policy `TagGraceHours` after the violation began.",
        "amiguard deprecates, disables or deregisters it as `TagEscalation` says (never an AMI running instances use).",
        Remedy.AMIGUARD,
        (f"{_POLICY}/Required Tags Missing",),
        frozenset({EVENT, SWEEPER}),
        ("tag_enforcer",),
        severity_note="high when the AMI is disabled or deregistered",
        docs="tag-violations.md",
    ),
    CatalogueEntry(
        FindingType.REPLICATION_STARTED,
        Severity.INFO,
        "Approved AMI being copied to a DR region",
        "An approved AMI is being copied to a disaster-recovery region.",
        "`CopyImage` with a deterministic `ClientToken`, encrypted, tagged.",
        Remedy.NONE,
        (f"{_BEST_PRACTICES}/AMI Disaster Recovery",),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("dr_replicator", "sweeper", "scan"),
        compliance=Compliance.PASSED,
        docs="dr-replication.md",
    ),
    CatalogueEntry(
        FindingType.REPLICATION_COMPLETE,
        Severity.INFO,
        "DR copy available",
        "The copy of an approved AMI is `available` in its DR region.",
        "Recorded in the ledger.",
        Remedy.NONE,
        (f"{_BEST_PRACTICES}/AMI Disaster Recovery",),
        frozenset({EVENT}),
        ("dr_replicator",),
        compliance=Compliance.PASSED,
        docs="dr-replication.md",
    ),
    CatalogueEntry(
        FindingType.REPLICATION_FAILED,
        Severity.HIGH,
        "DR copy failed",
        "The copy of an approved AMI failed, or `CopyImage` kept failing.",
        "Recorded; the next approval or sweep retries.",
        Remedy.AMIGUARD,
        (f"{_BEST_PRACTICES}/AMI Disaster Recovery",),
        frozenset({EVENT}),
        ("dr_replicator",),
        docs="dr-replication.md",
    ),
    CatalogueEntry(
        FindingType.NOT_REPLICABLE,
        Severity.MEDIUM,
        "Approved AMI cannot be copied",
        "An approved AMI cannot be copied to its DR regions (for example Marketplace product codes).",
        "Nothing automatic: a human decides how to recover it.",
        Remedy.HUMAN,
        (f"{_BEST_PRACTICES}/AMI Disaster Recovery",),
        frozenset({EVENT, SCAN}),
        ("dr_replicator", "scan"),
        docs="dr-replication.md",
    ),
    CatalogueEntry(
        FindingType.NOT_REPLICATED,
        Severity.MEDIUM,
        "Approved AMI has no DR replica",
        "An approved AMI has no replica in one of the DR regions.",
        "amiguard copies it (enforce mode).",
        Remedy.AMIGUARD,
        (f"{_BEST_PRACTICES}/AMI Disaster Recovery",),
        frozenset({SCAN, SWEEPER}),
        ("sweeper", "scan"),
        docs="dr-replication.md",
    ),
    CatalogueEntry(
        FindingType.APPROVAL_REMOVED,
        Severity.INFO,
        "Approval tag removed from a replicated AMI",
        "The approval tag was removed from a source AMI.",
        "amiguard stops replicating it; replicas stay.",
        Remedy.NONE,
        (f"{_BEST_PRACTICES}/AMI Disaster Recovery",),
        frozenset({EVENT}),
        ("dr_replicator",),
        compliance=Compliance.PASSED,
        docs="replicas.md",
    ),
    CatalogueEntry(
        FindingType.REPLICA_CLEANUP,
        Severity.INFO,
        "Replicas of a deregistered AMI cleaned up",
        "A source AMI was deregistered; its DR replicas are dealt with.",
        "amiguard deprecates or deregisters its replicas as `ReplicaCleanup` says.",
        Remedy.AMIGUARD,
        (f"{_BEST_PRACTICES}/AMI Disaster Recovery",),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("dr_replicator", "sweeper"),
        compliance=Compliance.PASSED,
        severity_note="low in a scan",
        docs="replicas.md",
    ),
    CatalogueEntry(
        FindingType.IMAGE_FAILED,
        Severity.MEDIUM,
        "AMI reached state failed",
        "An AMI amiguard did not make reached state `failed`.",
        "Reported: a human finds out why it failed.",
        Remedy.HUMAN,
        (f"{_BEST_PRACTICES}/AMI Failed",),
        frozenset({EVENT}),
        ("dr_replicator",),
        compliance=Compliance.WARNING,
    ),
    CatalogueEntry(
        FindingType.SWEEP_SUMMARY,
        Severity.INFO,
        "Daily sweep summary",
        "The daily account of the sweep: what it checked and what it found.",
        "Nothing.",
        Remedy.NONE,
        (f"{_BEST_PRACTICES}/amiguard Sweep",),
        frozenset({SWEEPER}),
        ("sweeper",),
        compliance=Compliance.PASSED,
        security_hub=False,
    ),
    CatalogueEntry(
        FindingType.FORGED_AMIGUARD_TAG,
        Severity.HIGH,
        "amiguard tag contradicted by amiguard's records",
        "An `amiguard:*` tag disagrees with amiguard's own records (a `violation-since` it never wrote, a "
        "`replica-of` no ledger row or EC2 backs): someone wrote it by hand.",
        "amiguard ignores the tag and rewrites it from its record; it never acts on it. A human finds "
        "out who wrote it.",
        Remedy.AMIGUARD,
        (f"{_DEFENSE_EVASION}/Forged amiguard Tag",),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("tag_enforcer", "dr_replicator", "sweeper", "scan"),
        docs="tag-violations.md",
    ),
    CatalogueEntry(
        FindingType.TAMPERED,
        Severity.CRITICAL,
        "amiguard's own deployment was changed",
        "One of amiguard's own rules, functions, roles or its trail was changed, throttled or deleted.",
        "Alerted in seconds: a human restores the stack and finds out who changed it.",
        Remedy.HUMAN,
        (f"{_DEFENSE_EVASION}/Security Tooling Tampered",),
        frozenset({EVENT}),
        ("tamper_guard",),
        severity_note="info for the stack's own deployment",
        docs="tampering.md",
    ),
    CatalogueEntry(
        FindingType.COVERAGE_GAP,
        Severity.CRITICAL,
        "amiguard's deployment is not as deployed",
        "The daily check found amiguard's deployment not as deployed: a rule disabled or without target, "
        "a function gone or throttled, the trail stopped.",
        "Alerted: a human restores the stack.",
        Remedy.HUMAN,
        (f"{_DEFENSE_EVASION}/Security Tooling Coverage Gap",),
        frozenset({SWEEPER}),
        ("sweeper",),
        severity_note="high when the check was refused",
        docs="tampering.md",
    ),
    CatalogueEntry(
        FindingType.UNENCRYPTED_AMI,
        Severity.MEDIUM,
        "AMI with an unencrypted EBS snapshot",
        "An EBS snapshot behind the AMI is not encrypted: whoever gets the snapshot (a share, a copy) reads the "
        "disk, and EBS encryption by default never covers existing snapshots.",
        "A human copies the AMI with `CopyImage Encrypted=true` and retires this one.",
        Remedy.HUMAN,
        (f"{_BEST_PRACTICES}/Unencrypted AMI",),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("tag_enforcer", "sweeper", "scan"),
        docs="checks.md",
    ),
    CatalogueEntry(
        FindingType.AMI_STALE,
        Severity.LOW,
        "AMI older than MaxImageAgeDays with no deprecation time",
        "An available AMI is older than `MaxImageAgeDays` (default off) and has no deprecation time: nobody "
        "decided how long it lives.",
        "With `StaleImageAction=deprecate` the sweep (enforce mode) sets its deprecation time, never on an AMI "
        "instances use; otherwise a human decides.",
        Remedy.AMIGUARD,
        (f"{_BEST_PRACTICES}/Stale AMI",),
        frozenset({SCAN, SWEEPER}),
        ("sweeper", "scan"),
        compliance=Compliance.WARNING,
        docs="checks.md",
    ),
    CatalogueEntry(
        FindingType.AMI_UNUSED,
        Severity.LOW,
        "AMI not launched for UnusedImageDays",
        "An available AMI was not launched for `UnusedImageDays` (default off): DescribeImages' `LastLaunchedTime`, "
        "or its creation date when it was never launched.",
        "As `ami-stale`: deprecated with `StaleImageAction=deprecate`, never an AMI instances use.",
        Remedy.AMIGUARD,
        (f"{_BEST_PRACTICES}/Unused AMI",),
        frozenset({SCAN, SWEEPER}),
        ("sweeper", "scan"),
        compliance=Compliance.WARNING,
        docs="checks.md",
    ),
    CatalogueEntry(
        FindingType.SNAPSHOT_BLOCK_PUBLIC_ACCESS_DISABLED,
        Severity.CRITICAL,
        "EBS snapshot block public access turned off",
        "EBS snapshot block public access was turned off in a region: snapshots there can be made public again.",
        "amiguard turns it back on (`block-new-sharing`, enforce mode).",
        Remedy.AMIGUARD,
        (f"{_BEST_PRACTICES}/Snapshot Block Public Access Disabled",),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("public_guard", "sweeper", "scan"),
        docs="checks.md",
    ),
    CatalogueEntry(
        FindingType.AMI_LEGACY_PLATFORM,
        Severity.LOW,
        "Paravirtual or instance-store-backed AMI",
        "The AMI is paravirtual (current instance types launch HVM only) or instance-store-backed (EBS encryption "
        "and snapshot block public access do not cover it).",
        "A human re-builds it as an EBS-backed HVM AMI.",
        Remedy.HUMAN,
        (f"{_BEST_PRACTICES}/Legacy AMI Platform",),
        frozenset({EVENT, SCAN, SWEEPER}),
        ("tag_enforcer", "sweeper", "scan"),
        docs="checks.md",
    ),
    CatalogueEntry(
        FindingType.SHARED_SNAPSHOT_USED,
        Severity.HIGH,
        "Another account used a shared snapshot",
        "Another account created a volume from, or copied, one of this account's snapshots (CloudTrail's "
        "SharedSnapshotVolumeCreated / SharedSnapshotCopyInitiated): it has the data.",
        "Nothing to undo: amiguard names the account; the share itself is revoked on its own event or by the sweep.",
        Remedy.HUMAN,
        (f"{_DATA_EXPOSURE}/Shared Snapshot Used",),
        frozenset({EVENT}),
        ("public_guard",),
        compliance=Compliance.WARNING,
        severity_note="low when the account is trusted",
        docs="checks.md",
    ),
    CatalogueEntry(
        FindingType.MEMBER_ROLE_UNAVAILABLE,
        Severity.HIGH,
        "amiguard cannot act in a member account",
        "Organization mode: amiguard cannot act in an account through its member role: the role is missing or "
        "refuses the central role, the account is suspended or outside the organization, the region is not "
        "enabled there, or STS throttled AssumeRole until the deadline (`evidence.cause`).",
        "Nothing happens there until the role works: the event is retried, then kept in the failure queue; a "
        "human deploys or repairs the member roles' StackSet instance.",
        Remedy.HUMAN,
        (f"{_DEFENSE_EVASION}/Security Tooling Coverage Gap",),
        frozenset({EVENT, SWEEPER}),
        ("public_guard", "tag_enforcer", "dr_replicator", "sweeper"),
        # Imported through the very role that is unavailable: never; the alert is the channel.
        security_hub=False,
        docs="member-accounts.md",
    ),
)

CATALOGUE: dict[FindingType, CatalogueEntry] = {entry.type: entry for entry in _ENTRIES}

# Actions after which the problem a finding reports is gone (its Security Hub finding is closed).
REMEDYING_ACTIONS = frozenset({Action.REVOKED})


def entry_for(finding_type: FindingType) -> CatalogueEntry:
    """The catalogue entry of a finding type (every type has one: tests/unit/test_catalogue.py)."""
    return CATALOGUE[finding_type]


def is_closed(finding: Finding) -> bool:
    """Whether the problem the finding reports no longer exists: amiguard removed it, or it was resolved."""
    entry = CATALOGUE[finding.type]
    return entry.compliance is Compliance.PASSED or (
        entry.compliance is Compliance.FAILED and finding.action in REMEDYING_ACTIONS
    )
