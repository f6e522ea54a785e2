"""The demo's short form: one line per event (what happened → what amiguard did), and the closing summary.

Derived only from what the sandbox recorded (each delivery's event and the findings its function returned), never
from which act ran: an act added later renders without code here. An event goes to several functions (one
delivery per matching rule); its line joins what all of them did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from amiguard.models.findings import Severity
from amiguard.slack.blocks import format_duration
from amiguard_cli.sandbox.account import Delivery

SEVERITY_RANK = {severity.value: rank for rank, severity in enumerate(Severity)}  # critical first
OWN_CALL = "amiguard-own-action"  # the drop reason of a CloudTrail record of amiguard's own call
TIMES = "\u00d7"
INLINE_GROUPS = 3  # more distinct (action, type) pairs than this: counted per action instead of listed
# How an action reads after "→": a finding whose action is "none" was reported (alerted), nothing was changed.
ACTION_WORDS = {"none": "reported"}


def action_word(action: object) -> str:
    return ACTION_WORDS.get(str(action), str(action))


@dataclass
class EventLine:
    """One event and what every function it reached made of it."""

    key: str
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def event(self) -> dict[str, Any]:
        return self.deliveries[0].event

    @property
    def findings(self) -> list[dict[str, Any]]:
        return [finding for d in self.deliveries for finding in (d.result or {}).get("findings", [])]

    @property
    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.error]

    @property
    def severity(self) -> str | None:
        """The highest severity among its findings (None without findings)."""
        ranked = sorted((str(f.get("severity")) for f in self.findings), key=lambda s: SEVERITY_RANK.get(s, 99))
        return ranked[0] if ranked else None

    @property
    def own_call(self) -> bool:
        """Every function dropped it as amiguard's own call: no one but amiguard did anything."""
        return all((d.result or {}).get("reason") == OWN_CALL and not d.error for d in self.deliveries)

    @property
    def alert_delivery(self) -> bool:
        return "Records" in self.event  # the notifier's SNS invocation

    @property
    def by_a_person(self) -> bool:
        """A CloudTrail record of someone's call (not amiguard's, not AWS's own events)."""
        return self.event.get("detail-type") == "AWS API Call via CloudTrail" and not self.own_call

    @property
    def shown(self) -> bool:
        """Shown in the short form: it raised findings, failed, or was someone's call."""
        return bool(self.findings or self.failed) or (self.by_a_person and not self.alert_delivery)


def group_events(deliveries: Iterable[Delivery]) -> list[EventLine]:
    """Deliveries grouped by the event they carried, in the order the events were first delivered."""
    lines: dict[str, EventLine] = {}
    for delivery in deliveries:
        event = delivery.event
        key = str(event.get("id") or id(event))
        if "Records" in event:  # one SNS notification per message
            records = event.get("Records") or [{}]
            key = str((records[0].get("Sns") or {}).get("MessageId") or id(event))
        lines.setdefault(key, EventLine(key)).deliveries.append(delivery)
    return list(lines.values())


def what_happened(line: EventLine, *, account: str = "", home: str = "") -> str:
    """Who did what to which resource, from the event alone (account and region where they are not the home's)."""
    event, delivery = line.event, line.deliveries[0]
    detail = event.get("detail") or {}
    where = [event.get("account")] if account and event.get("account") not in (None, account) else []
    region = detail.get("awsRegion") or event.get("region") or delivery.region
    if home and region != home:
        where.append(region)
    suffix = f" in {'/'.join(str(w) for w in where)}" if where else ""
    if line.alert_delivery:
        return f"SNS alert to {delivery.function}"
    if event.get("detail-type") == "AWS API Call via CloudTrail":
        identity = detail.get("userIdentity") or {}
        who = identity.get("userName") or str(identity.get("arn", "?")).rsplit("/", 1)[-1]
        return f"{who} {detail.get('eventName')} {_target(detail)}".rstrip() + suffix
    if event.get("detail-type") == "Scheduled Event":
        return f"schedule: {delivery.function}" + suffix
    if "ImageId" in detail:  # EC2 AMI State Change
        return f"{detail.get('ImageId')} {detail.get('State', '')}".rstrip() + suffix
    return f"{event.get('detail-type') or event.get('source') or 'event'}" + suffix


def _target(detail: dict[str, Any]) -> str:
    params = detail.get("requestParameters") or {}
    response = detail.get("responseElements") or {}
    items = (params.get("resourcesSet") or {}).get("items") or []
    resources = [str(item.get("resourceId")) for item in items if isinstance(item, dict)]
    name = params.get("functionName") or params.get("name") or params.get("roleName") or ""
    return str(
        params.get("imageId")
        or params.get("snapshotId")
        or response.get("imageId")
        or " ".join(resources[:2] + (["…"] if len(resources) > 2 else []))
        or str(name).rsplit(":", 1)[-1]
    )


def what_amiguard_did(line: EventLine) -> str:
    """The findings' actions (``revoked public-share``), a failure, or why there was nothing to do."""
    if line.failed:
        delivery = line.failed[0]
        return f"FAILED in {delivery.function} ({delivery.error}): kept in the failure queue"
    findings = line.findings
    if not findings:
        reasons = [str((d.result or {}).get("reason")) for d in line.deliveries if (d.result or {}).get("reason")]
        clean = [r for d, r in zip(line.deliveries, reasons, strict=False) if (d.result or {}).get("status") == "clean"]
        return f"nothing to do ({', '.join(dict.fromkeys(clean or reasons[:1])) or 'no rule matched'})"
    groups = Counter((action_word(f.get("action")), str(f.get("type"))) for f in findings)
    if len(groups) > INLINE_GROUPS:
        actions = Counter(action_word(f.get("action")) for f in findings)
        return f"{len(findings)} findings: " + ", ".join(f"{action} {n}" for action, n in actions.most_common())
    by_action: dict[str, list[str]] = {}
    for (action, kind), n in groups.items():
        by_action.setdefault(action, []).append(kind + (f" {TIMES}{n}" if n > 1 else ""))
    return "; ".join(f"{action} {', '.join(kinds)}" for action, kinds in by_action.items())


def plural(count: int, noun: str) -> str:
    """``1 own call``, ``2 own calls``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class SummaryRow:
    """One finding type across the run: how often, what amiguard did, how long the longest exposure lasted."""

    type: str
    severity: str
    count: int
    actions: str
    exposure: str


def summarize(findings: Sequence[dict[str, Any]]) -> list[SummaryRow]:
    """Findings per type, most severe first (then by type), with their actions counted."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        by_type.setdefault(str(finding.get("type")), []).append(finding)
    rows = []
    for kind, group in by_type.items():
        severity = min((str(f.get("severity")) for f in group), key=lambda s: SEVERITY_RANK.get(s, 99))
        actions = Counter(action_word(f.get("action")) for f in group)
        exposures = [float(f["exposure_seconds"]) for f in group if f.get("exposure_seconds") is not None]
        rows.append(
            SummaryRow(
                type=kind,
                severity=severity,
                count=len(group),
                actions=", ".join(f"{a} {TIMES}{n}" if n > 1 else a for a, n in actions.most_common()),
                exposure=format_duration(max(exposures)) if exposures else "—",
            )
        )
    return sorted(rows, key=lambda row: (SEVERITY_RANK.get(row.severity, 99), row.type))
