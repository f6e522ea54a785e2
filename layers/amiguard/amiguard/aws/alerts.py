"""SNS adapter: every finding is published as JSON with filterable message attributes.

Each message carries ``dedup_id`` (:func:`amiguard.aws.posted.alert_id`, the finding's ledger key): SNS is
at-least-once and a Publish whose answer was lost is published again, so every subscriber (the notifier, an
e-mail rule, a SIEM) can tell a second copy of an alert from a second alert.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from amiguard.aws.posted import alert_id
from amiguard.models.findings import Finding

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

SUBJECT_LIMIT = 100  # SNS rejects longer subjects


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


class SnsAlerts:
    """Publishes findings to the alert topic."""

    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish(self, finding: Finding) -> None:
        self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=subject_for(finding),
            Message=json.dumps(finding.to_message(), ensure_ascii=False),
            MessageAttributes={
                "severity": {"DataType": "String", "StringValue": finding.severity.value},
                "type": {"DataType": "String", "StringValue": finding.type.value},
                "account": {"DataType": "String", "StringValue": finding.account},
                "region": {"DataType": "String", "StringValue": finding.region},
                "dedup_id": {"DataType": "String", "StringValue": alert_id(finding)},
            },
        )
