"""Who may launch an AMI or create volumes from its snapshots.

Triggered by ModifyImageAttribute (``launchPermission``), ModifySnapshotAttribute
(``createVolumePermission``) and, for the sweep, by every owned AMI. The event only says where to look:
:func:`read_permission_change` tells whether a call could have widened access; :func:`assess_grants`
decides from the *current* grants (DescribeImageAttribute / DescribeSnapshotAttribute) what is public,
what is untrusted and what stays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from amiguard.models.findings import FindingType, Severity


class GrantKind(StrEnum):
    """The four kinds of launch permission (snapshots know only the first two)."""

    GROUP = "Group"
    USER_ID = "UserId"
    ORGANIZATION = "OrganizationArn"
    ORGANIZATIONAL_UNIT = "OrganizationalUnitArn"


@dataclass(frozen=True, order=True)
class Grant:
    """One launch or create-volume permission, in the EC2 API's own key and value."""

    kind: GrantKind
    value: str

    @property
    def is_public(self) -> bool:
        return self.kind is GrantKind.GROUP and self.value == "all"

    def as_api(self) -> dict[str, str]:
        return {self.kind.value: self.value}

    def __str__(self) -> str:
        return "public (group all)" if self.is_public else self.value


def grants_from_api(permissions: Iterable[Mapping[str, Any]]) -> list[Grant]:
    """``LaunchPermissions`` / ``CreateVolumePermissions`` from a Describe call, as grants."""
    grants = []
    for permission in permissions:
        for kind in GrantKind:
            value = permission.get(kind.value)
            if isinstance(value, str) and value:
                grants.append(Grant(kind, value))
    return sorted(set(grants))


class ChangeKind(StrEnum):
    ADDS = "adds"
    REMOVES_ONLY = "removes-only"
    OTHER_ATTRIBUTE = "other-attribute"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PermissionChange:
    """What a Modify*Attribute call asked for, as far as the event tells."""

    kind: ChangeKind
    added: tuple[Grant, ...] = ()

    @property
    def only_public_added(self) -> bool:
        return bool(self.added) and all(grant.is_public for grant in self.added)


_EVENT_KEYS = {
    "group": GrantKind.GROUP,
    "userid": GrantKind.USER_ID,
    "organizationarn": GrantKind.ORGANIZATION,
    "organizationalunitarn": GrantKind.ORGANIZATIONAL_UNIT,
    # the legacy form names lists userGroup / groupName
    "usergroup": GrantKind.GROUP,
    "groupname": GrantKind.GROUP,
}


def _grants_in(node: Any) -> list[Grant]:
    """Grants anywhere in a CloudTrail ``{items: [{group|userId|...}]}`` fragment, legacy forms included."""
    found: list[Grant] = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            kind = _EVENT_KEYS.get(str(key).lower())
            if kind and isinstance(value, str):
                found.append(Grant(kind, value))
            else:
                found.extend(_grants_in(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_grants_in(item))
    return found


def _attribute_names(attribute: str) -> set[str]:
    return {attribute.lower(), attribute.replace("_", "").lower()}


def read_permission_change(params: Mapping[str, Any], *, attribute: str) -> PermissionChange:
    """Classify a ModifyImageAttribute / ModifySnapshotAttribute request.

    ``attribute`` is ``launchPermission`` or ``createVolumePermission``. CloudTrail records the structured
    form (``launchPermission.add.items``), snapshots with ``attributeType: CREATE_VOLUME_PERMISSION``; the
    legacy form (``operationType`` with user ids and groups) may come without ``attributeType``. When the
    event cannot say, the answer is ``UNKNOWN`` and the caller decides from current state.
    """
    lowered = {str(key).lower(): value for key, value in params.items()}
    wanted = attribute.lower()
    declared = lowered.get("attributetype") or lowered.get("attribute")
    if isinstance(declared, str) and declared and not (_attribute_names(declared) & {wanted}):
        return PermissionChange(ChangeKind.OTHER_ATTRIBUTE)

    structured = lowered.get(wanted)
    if isinstance(structured, Mapping):
        parts = {str(key).lower(): value for key, value in structured.items()}
        added = tuple(_grants_in(parts.get("add")))
        if added:
            return PermissionChange(ChangeKind.ADDS, added)
        if _grants_in(parts.get("remove")):
            return PermissionChange(ChangeKind.REMOVES_ONLY)
        return PermissionChange(ChangeKind.UNKNOWN)

    operation = str(lowered.get("operationtype", "")).lower()
    legacy = {key: value for key, value in lowered.items() if key in _EVENT_KEYS or key.endswith("set")}
    if operation == "remove":
        return PermissionChange(ChangeKind.REMOVES_ONLY)
    if operation == "add":
        return PermissionChange(ChangeKind.ADDS, tuple(_grants_in(legacy)))
    if declared is None and any(key in lowered for key in ("description", "imdssupport", "productcodes")):
        return PermissionChange(ChangeKind.OTHER_ATTRIBUTE)
    return PermissionChange(ChangeKind.UNKNOWN)


_OU_ARN = re.compile(r"^(arn:[^:]+:organizations::\d{12}):ou/(o-[a-z0-9]+)/")
_ORG_ARN = re.compile(r"^(arn:[^:]+:organizations::\d{12}):organization/(o-[a-z0-9]+)$")


def is_trusted(grant: Grant, *, own_account: str, trusted_principals: Sequence[str]) -> bool:
    """Own account, a listed account/organization/OU, or an OU inside a listed organization."""
    if grant.is_public:
        return False
    if grant.value == own_account or grant.value in trusted_principals:
        return True
    if grant.kind is GrantKind.ORGANIZATIONAL_UNIT and (ou := _OU_ARN.match(grant.value)):
        for principal in trusted_principals:
            org = _ORG_ARN.match(principal)
            if org and org.groups() == ou.groups():
                return True
    return False


@dataclass(frozen=True)
class Exposure:
    """The verdict on a set of grants: what must be revoked and what may stay."""

    public: Grant | None
    untrusted: tuple[Grant, ...]
    kept: tuple[Grant, ...] = field(default=())

    @property
    def to_revoke(self) -> tuple[Grant, ...]:
        return ((self.public,) if self.public else ()) + self.untrusted

    @property
    def exposed(self) -> bool:
        return bool(self.to_revoke)


def assess_grants(
    grants: Iterable[Grant],
    *,
    own_account: str,
    trusted_principals: Sequence[str],
    public_allowed: bool = False,
) -> Exposure:
    """Split current grants into public (unless allow-listed), untrusted, and kept."""
    public: Grant | None = None
    untrusted: list[Grant] = []
    kept: list[Grant] = []
    for grant in sorted(set(grants)):
        if grant.is_public:
            if public_allowed:
                kept.append(grant)
            else:
                public = grant
        elif is_trusted(grant, own_account=own_account, trusted_principals=trusted_principals):
            kept.append(grant)
        else:
            untrusted.append(grant)
    return Exposure(public=public, untrusted=tuple(untrusted), kept=tuple(kept))


@dataclass(frozen=True)
class Verdict:
    """A finding to raise for one exposure: its type, severity and one-sentence summary."""

    type: FindingType
    severity: Severity
    summary: str
    evidence: dict[str, Any]


def image_verdicts(image_id: str, exposure: Exposure) -> list[Verdict]:
    """Findings for an AMI's launch permissions: public is critical, untrusted principals are high."""
    verdicts = []
    if exposure.public:
        verdicts.append(
            Verdict(
                FindingType.PUBLIC_SHARE,
                Severity.CRITICAL,
                f"AMI {image_id} was made public: anyone in any AWS account could launch it.",
                {"grants": ["group:all"], "kept": [str(grant) for grant in exposure.kept]},
            )
        )
    if exposure.untrusted:
        principals = [grant.value for grant in exposure.untrusted]
        verdicts.append(
            Verdict(
                FindingType.UNTRUSTED_SHARE,
                Severity.HIGH,
                f"AMI {image_id} was shared with {len(principals)} untrusted principal(s): {', '.join(principals)}.",
                {"untrusted_principals": principals, "kept": [str(grant) for grant in exposure.kept]},
            )
        )
    return verdicts


def snapshot_verdicts(snapshot_id: str, backed_images: Sequence[str], exposure: Exposure) -> list[Verdict]:
    """Findings for a snapshot's create-volume permissions, naming the AMIs it backs."""
    backs = f" (backs {', '.join(backed_images)})" if backed_images else ""
    verdicts = []
    if exposure.public:
        verdicts.append(
            Verdict(
                FindingType.PUBLIC_SNAPSHOT,
                Severity.CRITICAL,
                f"Snapshot {snapshot_id}{backs} was made public: anyone could copy its data.",
                {"grants": ["group:all"], "backed_images": list(backed_images)},
            )
        )
    if exposure.untrusted:
        principals = [grant.value for grant in exposure.untrusted]
        verdicts.append(
            Verdict(
                FindingType.UNTRUSTED_SHARE,
                Severity.HIGH,
                f"Snapshot {snapshot_id}{backs} was shared with untrusted account(s): {', '.join(principals)}.",
                {"untrusted_principals": principals, "backed_images": list(backed_images)},
            )
        )
    return verdicts


BLOCK_NEW_SHARING: Final = "block-new-sharing"  # what amiguard restores, for images and EBS snapshots alike
# The "on" states of both kinds: images know only block-new-sharing, EBS snapshots also block-all-sharing.
BLOCKED_STATES = frozenset({BLOCK_NEW_SHARING, "block-all-sharing"})
DECLARATIVE_POLICY = "declarative-policy"  # Get*BlockPublicAccessState's ManagedBy: the organization decides


@dataclass(frozen=True)
class BlockPublicAccess:
    """Image or EBS snapshot block public access in one region, as ``GetImageBlockPublicAccessState`` or
    ``GetSnapshotBlockPublicAccessState`` answers it (both answer a state and ``ManagedBy``)."""

    state: str  # block-new-sharing | unblocked (snapshots also: block-all-sharing)
    managed_by: str = "account"  # account | declarative-policy

    @property
    def blocked(self) -> bool:
        return self.state in BLOCKED_STATES

    @property
    def by_declarative_policy(self) -> bool:
        """An AWS Organizations declarative policy sets it: nobody in the account can change it, amiguard included."""
        return self.managed_by == DECLARATIVE_POLICY

    @property
    def restorable(self) -> bool:
        """Off, and the account (so amiguard) may turn it back on: EC2 refuses the change where a declarative
        policy manages the setting, so amiguard never tries it there."""
        return not self.blocked and not self.by_declarative_policy


@dataclass(frozen=True)
class BlockPublicAccessKind:
    """What differs between image and EBS snapshot block public access in a finding."""

    finding: FindingType
    name: str  # how the finding names the setting
    resources: str  # what it keeps from being made public
    policy_attribute: str  # the EC2 declarative policy's attribute that manages it


IMAGE_BLOCK_PUBLIC_ACCESS = BlockPublicAccessKind(
    FindingType.BLOCK_PUBLIC_ACCESS_DISABLED, "Image", "AMIs", "image_block_public_access"
)
SNAPSHOT_BLOCK_PUBLIC_ACCESS = BlockPublicAccessKind(
    FindingType.SNAPSHOT_BLOCK_PUBLIC_ACCESS_DISABLED, "EBS snapshot", "snapshots", "snapshot_block_public_access"
)


def block_public_access_verdict(
    region: str, state: str, *, managed_by: str = "account", kind: BlockPublicAccessKind = IMAGE_BLOCK_PUBLIC_ACCESS
) -> Verdict:
    """Image (or EBS snapshot) block public access off in a region: any AMI (snapshot) there can be made public.

    Managed by a declarative policy, amiguard cannot turn it back on (EC2 refuses the account's change): the finding
    says so and names the place to fix it, the organization's EC2 declarative policy.
    """
    if managed_by == DECLARATIVE_POLICY:
        return Verdict(
            kind.finding,
            Severity.CRITICAL,
            f"{kind.name} block public access is off in {region} and an AWS Organizations declarative policy manages "
            f"it: {kind.resources} there can be made public, and amiguard does not try to turn it back on (only the "
            f"organization's EC2 declarative policy, {kind.policy_attribute}, can).",
            {"state": state, "managed_by": DECLARATIVE_POLICY},
        )
    return Verdict(
        kind.finding,
        Severity.CRITICAL,
        f"{kind.name} block public access was turned off in {region}: {kind.resources} there can be made public again.",
        {"state": state, "restored": BLOCK_NEW_SHARING},
    )


def ended_exposure_verdict(
    kind: str, resource_id: str, exposure: Exposure, *, gone: bool, actor: str | None
) -> Verdict:
    """An exposure the event records but current state no longer shows (``kind``: ``AMI`` or ``Snapshot``).

    Public is high: anyone in any account could have launched or copied it meanwhile, and nobody can say
    who did. Shared with untrusted principals only is info: the principals are named, so whether they used
    the share can be followed up with them, and nothing is exposed any more.
    """
    by = f" by {actor}" if actor else ""
    now = "no longer existed" if gone else "was no longer shared"
    if exposure.public:
        summary = (
            f"{kind} {resource_id} was made public{by} and {now} when amiguard checked: "
            "anyone could have launched or copied it meanwhile."
        )
    else:
        principals = ", ".join(grant.value for grant in exposure.untrusted)
        summary = (
            f"{kind} {resource_id} was shared with untrusted principal(s) {principals}{by} "
            f"and {now} when amiguard checked."
        )
    return Verdict(
        FindingType.EXPOSURE_ENDED_BEFORE_CHECK,
        Severity.HIGH if exposure.public else Severity.INFO,
        summary,
        {
            "granted": [str(grant) for grant in exposure.to_revoke],
            "untrusted_principals": [grant.value for grant in exposure.untrusted],
            "public": exposure.public is not None,
            "now": "gone" if gone else "unshared",
        },
    )
