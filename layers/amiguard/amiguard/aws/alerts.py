"""SNS adapter: every finding is published with filterable message attributes, in each subscriber's form.

``MessageStructure=json``: an e-mail (and SMS, and every protocol SNS has no key for) gets readable text
(``default``/``email``: the finding catalogue's title, meaning and remedy, then the finding's facts), machines
(``sqs``, ``lambda``, ``http``, ``https``, ``email-json``, ``firehose``) get the finding JSON, exactly what was
published before: the notifier, a SIEM and the ledger parse it as they did. The subject is unchanged.

Each message carries ``dedup_id`` (:func:`amiguard.aws.posted.alert_id`, the finding's ledger key): SNS is
at-least-once and a Publish whose answer was lost is published again, so every subscriber (the notifier, an
e-mail rule, a SIEM) can tell a second copy of an alert from a second alert.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from amiguard.aws.posted import alert_id
from amiguard.models.catalogue import entry_for
from amiguard.models.findings import Finding

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

SUBJECT_LIMIT = 100  # SNS rejects longer subjects
MESSAGE_LIMIT = 262_144  # SNS's limit for the whole Message, every protocol's copy together (bytes)
TEXT_EVIDENCE_LIMIT = 8_000  # characters of evidence in the e-mail text; the JSON keeps it all
MACHINE_PROTOCOLS = ("sqs", "lambda", "http", "https", "email-json", "firehose")


def topic_region(topic_arn: str) -> str | None:
    """``arn:aws:sns:<region>:<account>:<name>`` → region (publish in the topic's own region)."""
    parts = topic_arn.split(":")
    return parts[3] if len(parts) > 5 and parts[3] else None


def subject_for(finding: Finding) -> str:
    """A readable e-mail subject: ASCII, no line breaks, at most 100 characters."""
    target = finding.snapshot_id or finding.image_id or finding.region
    text = f"[amiguard] {finding.severity.upper()} {finding.type} {target} ({finding.action})"
    text = text.encode("ascii", "replace").decode().replace("\n", " ")
    return text[:SUBJECT_LIMIT]


def _item(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _evidence_lines(evidence: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    used, omitted = 0, 0
    for key, value in evidence.items():
        items = value if isinstance(value, list | tuple) else [value]
        shown: list[str] = []
        for item in items:
            text = _item(item)[:500]
            if used + len(text) > TEXT_EVIDENCE_LIMIT:
                break
            shown.append(text)
            used += len(text) + 2
        omitted += len(items) - len(shown)
        lines.append(f"  {key}: {', '.join(shown) if shown else ('none' if not items else '...')}")
    if omitted:
        lines.append(f"  ... {omitted} evidence item(s) not shown here: the JSON message and the ledger hold them all")
    return lines


def alert_text(finding: Finding) -> str:
    """The alert as a person reads it in an e-mail: what happened, what it means, what is done, the facts."""
    entry = entry_for(finding.type)
    lines = [
        f"{finding.severity.value.upper()} {finding.type.value}: {entry.title}",
        "",
        finding.summary,
        "",
        f"What it means: {entry.meaning}",
        f"Remedy: {entry.remedy}",
        f"Action taken: {finding.action.value}",
        "",
        f"Account: {finding.account or 'unknown'}",
        f"Region: {finding.region}",
    ]
    if finding.image_id:
        lines.append(f"AMI: {finding.image_id}" + (f" ({finding.image_name})" if finding.image_name else ""))
    if finding.snapshot_id:
        lines.append(f"Snapshot: {finding.snapshot_id}")
    lines.append(f"Actor: {finding.actor or 'unknown'}")
    moment = finding.event_time or finding.detected_at
    lines.append(f"When: {moment:%Y-%m-%d %H:%M:%S} UTC" + (f" (event {finding.event_id})" if finding.event_id else ""))
    if finding.exposure_seconds is not None:
        lines.append(f"Exposed for: {finding.exposure_seconds:.0f} s")
    if finding.evidence:
        lines += ["", "Evidence:", *_evidence_lines(finding.evidence)]
    lines += ["", f"amiguard alert {alert_id(finding)}"]
    return "\n".join(lines)


def structured_message(finding: Finding) -> str:
    """The ``MessageStructure=json`` document: text for people, the finding JSON for machines.

    Every copy counts against SNS's 256 KB. A finding whose JSON is too big to repeat for each machine
    protocol is sent once, as ``default`` (what every protocol without its own key gets), the text as
    ``email``.
    """
    document = json.dumps(finding.to_message(), ensure_ascii=False)
    text = alert_text(finding)
    message = json.dumps(
        {"default": text, "email": text, **dict.fromkeys(MACHINE_PROTOCOLS, document)}, ensure_ascii=False
    )
    if len(message.encode()) <= MESSAGE_LIMIT:
        return message
    return json.dumps({"default": document, "email": text}, ensure_ascii=False)


class SnsAlerts:
    """Publishes findings to the alert topic."""

    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish(self, finding: Finding) -> None:
        self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=subject_for(finding),
            Message=structured_message(finding),
            MessageStructure="json",
            MessageAttributes={
                "severity": {"DataType": "String", "StringValue": finding.severity.value},
                "type": {"DataType": "String", "StringValue": finding.type.value},
                "account": {"DataType": "String", "StringValue": finding.account},
                "region": {"DataType": "String", "StringValue": finding.region},
                "dedup_id": {"DataType": "String", "StringValue": alert_id(finding)},
            },
        )
