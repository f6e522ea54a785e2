"""Security Hub adapter: each finding as an ASFF finding, imported in its AMI's own account and region.

``BatchImportFindings`` must be called by the finding's own account (``AwsAccountId``) with that account's
default product ARN, ``arn:<partition>:securityhub:<region>:<account>:product/<account>/default``. The ``Id``
is stable per account, region, resource and finding type, so a repeat updates the finding instead of adding
one. Import cannot change ``Workflow`` once a finding exists, so closing (a revoked share, a ``resolved``
violation) is two calls: the finding imported again with ``Compliance.Status`` PASSED, then
``BatchUpdateFindings`` setting ``Workflow.Status`` RESOLVED; a finding covered by a reviewed exception is
imported and set SUPPRESSED, with the exception in its note.

Clients come from ``client_for(account, region)``: in one account, the functions' own clients; in organization
mode, a client made with the member role of the AMI's account (the seam for the per-account sessions).

Limits (ASFF): a finding is at most 240 KB, its ``Description`` 1,024 characters, ``Title`` 256,
``ProductFields`` 50 pairs of at most 128/2,048 characters. The evidence goes into ``ProductFields``
(``amiguard/evidence/<key>``, JSON), cut to fit, with ``amiguard/evidence-omitted`` counting what was left out:
SNS and the ledger keep it whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from amiguard.aws.errors import error_code
from amiguard.models.catalogue import CatalogueEntry, entry_for, is_closed
from amiguard.models.exceptions import FindingException
from amiguard.models.findings import Finding, FindingType, Severity

if TYPE_CHECKING:
    from mypy_boto3_securityhub import SecurityHubClient

SCHEMA_VERSION = "2018-10-08"
FINDING_LIMIT = 240 * 1024
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 1024
RECOMMENDATION_LIMIT = 512
NOTE_LIMIT = 512
ID_LIMIT = 512
FIELD_KEY_LIMIT = 128
FIELD_VALUE_LIMIT = 2048
PRODUCT_FIELDS_LIMIT = 50
FIXED_FIELDS = 8  # amiguard's own ProductFields besides the evidence (type, action, actor, ...)
OMITTED = "amiguard/evidence-omitted"
# Errors that mean "Security Hub is not enabled (or not reachable) for this account and region": not retried.
UNAVAILABLE = frozenset({"InvalidAccessException", "AccessDeniedException", "ResourceNotFoundException"})

LABELS = {
    Severity.CRITICAL: "CRITICAL",
    Severity.HIGH: "HIGH",
    Severity.MEDIUM: "MEDIUM",
    Severity.LOW: "LOW",
    Severity.INFO: "INFORMATIONAL",
}


class HubOutcome(StrEnum):
    """What became of one finding in Security Hub."""

    IMPORTED = "imported"
    CLOSED = "closed"  # imported PASSED and set RESOLVED (or a violation it resolves was)
    SUPPRESSED = "suppressed"  # imported and set SUPPRESSED: a reviewed exception covers it
    NOT_EXPORTED = "not-exported"  # a report about amiguard's run (sweep-summary), not a finding


class HubRejected(RuntimeError):
    """Security Hub answered but did not take the finding (``FailedFindings``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def hub_unavailable(error: Exception) -> bool:
    """Security Hub is off (or refused) for the account and region: nothing a retry would change."""
    code = error.code if isinstance(error, HubRejected) else error_code(error) if isinstance(error, ClientError) else ""
    return code in UNAVAILABLE


HubErrors = (ClientError, BotoCoreError, HubRejected)


def partition_of(region: str) -> str:
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-iso-"):
        return "aws-iso"
    if region.startswith("us-isob-"):
        return "aws-iso-b"
    return "aws"


def product_arn(region: str, account: str) -> str:
    return f"arn:{partition_of(region)}:securityhub:{region}:{account}:product/{account}/default"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def resource_of(finding: Finding) -> str:
    """What the finding is about: the snapshot, else the AMI, else the account's region."""
    return finding.snapshot_id or finding.image_id or "account"


def finding_id(finding: Finding, finding_type: FindingType | None = None) -> str:
    """Stable per account, region, resource and type: a repeat updates the same Security Hub finding."""
    kind = (finding_type or finding.type).value
    text = f"amiguard/{finding.account}/{finding.region}/{resource_of(finding)}/{kind}"
    if len(text) <= ID_LIMIT:
        return text
    return f"amiguard/{finding.account[:12]}/{finding.region[:32]}/{hashlib.sha256(text.encode()).hexdigest()}/{kind}"


def _resources(finding: Finding, partition: str) -> list[dict[str, Any]]:
    region = finding.region
    resources: list[dict[str, Any]] = []
    if finding.image_id:
        image: dict[str, Any] = {
            "Type": "AwsEc2Image",
            "Id": _clip(f"arn:{partition}:ec2:{region}::image/{finding.image_id}", ID_LIMIT),
            "Partition": partition,
            "Region": region,
        }
        details = {"ImageId": finding.image_id} | ({"Name": finding.image_name} if finding.image_name else {})
        image["Details"] = {"Other": {key: _clip(value, 1024) for key, value in details.items()}}
        resources.append(image)
    if finding.snapshot_id:
        resources.append(
            {
                "Type": "AwsEc2Snapshot",
                "Id": _clip(f"arn:{partition}:ec2:{region}::snapshot/{finding.snapshot_id}", ID_LIMIT),
                "Partition": partition,
                "Region": region,
                "Details": {"Other": {"SnapshotId": _clip(finding.snapshot_id, 1024)}},
            }
        )
    if not resources:
        resources.append(
            {"Type": "AwsAccount", "Id": f"AWS::::Account:{finding.account}", "Partition": partition, "Region": region}
        )
    return resources


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def evidence_fields(evidence: dict[str, Any], budget: int) -> dict[str, str]:
    """Evidence as ProductFields within ``budget`` pairs and ``FIELD_VALUE_LIMIT`` each, cut with a count."""
    fields: dict[str, str] = {}
    omitted = 0
    for key, value in evidence.items():
        name = _clip(f"amiguard/evidence/{key}", FIELD_KEY_LIMIT)
        items = list(value) if isinstance(value, list | tuple) else None
        if len(fields) >= budget or name in fields:
            omitted += len(items) if items is not None else 1
            continue
        if items is None:
            text = _json(value)
            if len(text) > FIELD_VALUE_LIMIT:
                text, omitted = _clip(text, FIELD_VALUE_LIMIT), omitted + 1
            fields[name] = text
            continue
        kept = items
        while kept and len(_json(kept)) > FIELD_VALUE_LIMIT:  # strictly shorter each time
            kept = kept[: len(kept) * FIELD_VALUE_LIMIT // len(_json(kept))] if len(kept) > 1 else []
        omitted += len(items) - len(kept)
        fields[name] = _json(kept)
    if omitted:
        fields[OMITTED] = str(omitted)
    return fields


@dataclass(frozen=True)
class AsffOptions:
    closed: bool = False
    finding_type: FindingType | None = None  # another type's finding about the same resource (one it closes)


def asff(finding: Finding, *, now: datetime, options: AsffOptions = AsffOptions()) -> dict[str, Any]:
    """The finding in the AWS Security Finding Format, every required field filled."""
    kind = options.finding_type or finding.type
    entry: CatalogueEntry = entry_for(kind)
    partition = partition_of(finding.region)
    target = finding.snapshot_id or finding.image_id or finding.region
    observed = (finding.event_time or finding.detected_at).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    updated = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    severity = {"Label": LABELS[finding.severity], "Original": finding.severity.value}
    fixed = {
        "amiguard/type": finding.type.value,
        "amiguard/action": finding.action.value,
        "amiguard/actor": _clip(finding.actor or "unknown", FIELD_VALUE_LIMIT),
        "amiguard/event-id": _clip(finding.event_id or "none", FIELD_VALUE_LIMIT),
        "amiguard/fingerprint": finding.fingerprint,
    }
    if finding.exposure_seconds is not None:
        fixed["amiguard/exposure-seconds"] = f"{finding.exposure_seconds:.0f}"
    budget = PRODUCT_FIELDS_LIMIT - FIXED_FIELDS
    document: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(finding, kind),
        "ProductArn": product_arn(finding.region, finding.account),
        "GeneratorId": f"amiguard/{kind.value}",
        "AwsAccountId": finding.account,
        "Region": finding.region,
        "Types": list(entry.asff_types),
        "FirstObservedAt": observed,
        "LastObservedAt": observed,
        "CreatedAt": observed,
        "UpdatedAt": updated,
        "Severity": severity,
        "Title": _clip(f"{entry.title}: {target}", TITLE_LIMIT),
        "Description": _clip(finding.summary or entry.meaning, DESCRIPTION_LIMIT),
        "Remediation": {"Recommendation": {"Text": _clip(entry.remedy, RECOMMENDATION_LIMIT)}},
        "ProductName": "amiguard",
        "CompanyName": "amiguard",
        "ProductFields": fixed,
        "Resources": _resources(finding, partition),
        "Compliance": {"Status": "PASSED" if options.closed else entry.compliance.value},
        "Workflow": {"Status": "NEW"},
        "RecordState": "ACTIVE",
        "FindingProviderFields": {"Severity": severity, "Types": list(entry.asff_types)},
    }
    while True:
        document["ProductFields"] = fixed | evidence_fields(finding.evidence, budget)
        if len(_json(document).encode()) <= FINDING_LIMIT or budget == 0:
            return document
        budget //= 2  # never with ASFF's own field limits; kept as the last guard of the 240 KB


class SecurityHubExport:
    """Imports findings into Security Hub; closes and suppresses them. Errors propagate (the caller counts)."""

    def __init__(
        self,
        client_for: Callable[[str, str], SecurityHubClient],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client_for = client_for
        self._clock = clock

    def export(self, finding: Finding, *, excepted: FindingException | None = None) -> HubOutcome:
        entry = entry_for(finding.type)
        if not entry.security_hub and not entry.closes:
            return HubOutcome.NOT_EXPORTED
        client = self._client_for(finding.account, finding.region)
        now = self._clock()
        outcome = HubOutcome.IMPORTED
        if entry.security_hub:
            closed = is_closed(finding)
            self._import(client, [asff(finding, now=now, options=AsffOptions(closed=closed))])
            if excepted is not None:
                note = f"excepted by {excepted.name} until {excepted.expires.isoformat()}: {excepted.reason}"
                self._update(client, [finding_id(finding)], finding, "SUPPRESSED", note)
                return HubOutcome.SUPPRESSED
            if closed:
                self._update(client, [finding_id(finding)], finding, "RESOLVED", f"{finding.action.value} by amiguard")
                outcome = HubOutcome.CLOSED
        if entry.closes:
            ids = {finding_id(finding, kind): kind for kind in entry.closes}
            resolved = self._update(client, list(ids), finding, "RESOLVED", f"resolved: {finding.summary}")
            options = [AsffOptions(closed=True, finding_type=ids[found]) for found in resolved if found in ids]
            self._import(client, [asff(finding, now=now, options=option) for option in options])
            outcome = HubOutcome.CLOSED if options else HubOutcome.NOT_EXPORTED
        return outcome

    @staticmethod
    def _import(client: SecurityHubClient, findings: list[dict[str, Any]]) -> None:
        if not findings:
            return
        answer = client.batch_import_findings(Findings=cast(Any, findings))
        if answer.get("FailedCount"):
            failed: list[Any] = list(answer.get("FailedFindings") or [])
            first: dict[str, Any] = dict(failed[0]) if failed else {}
            raise HubRejected(str(first.get("ErrorCode", "Failed")), str(first.get("ErrorMessage", "")))

    @staticmethod
    def _update(client: SecurityHubClient, ids: list[str], finding: Finding, status: str, note: str) -> list[str]:
        """Set the workflow status of the findings ``ids`` that exist; returns those Security Hub updated."""
        arn = product_arn(finding.region, finding.account)
        answer = client.batch_update_findings(
            FindingIdentifiers=[{"Id": found, "ProductArn": arn} for found in ids],
            Workflow={"Status": cast(Any, status)},
            Note={"Text": _clip(note, NOTE_LIMIT), "UpdatedBy": "amiguard"},
        )
        return [str(item["Id"]) for item in answer.get("ProcessedFindings", [])]
