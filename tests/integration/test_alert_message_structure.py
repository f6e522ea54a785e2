"""SNS alerts in each subscriber's form (MessageStructure=json): text for e-mail, the finding JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from amiguard.aws.alerts import MESSAGE_LIMIT, SnsAlerts, subject_for
from amiguard.models.catalogue import entry_for
from amiguard.models.findings import Action, Finding, FindingType, Severity

REGION = "eu-west-1"


def _finding(**changes: Any) -> Finding:
    base = Finding(
        type=FindingType.PUBLIC_SHARE,
        severity=Severity.CRITICAL,
        summary="AMI ami-0123456789abcdef0 (Überbild-基础) was made public.",
        account="111122223333",
        region=REGION,
        image_id="ami-0123456789abcdef0",
        image_name="Überbild-基础",
        actor="arn:aws:iam::111122223333:user/dev-bob",
        event_id="e-1",
        action=Action.REVOKED,
        evidence={"grants": ["all"]},
    )
    return base.model_copy(update=changes)


@pytest.fixture
def topic() -> Iterator[tuple[Any, str, str, list[dict[str, Any]]]]:
    """A topic with an SQS subscriber; every Publish request's parameters are kept as sent."""
    with mock_aws():
        sns, sqs = boto3.client("sns", REGION), boto3.client("sqs", REGION)
        arn = sns.create_topic(Name="amiguard-alerts")["TopicArn"]
        url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
        sent: list[dict[str, Any]] = []
        sns.meta.events.register("provide-client-params.sns.Publish", lambda params, **_: sent.append(dict(params)))
        yield sns, arn, url, sent


def test_email_gets_readable_text_and_machines_the_finding_json_when_alerted(topic) -> None:
    sns, arn, url, sent = topic
    finding = _finding()

    # When the finding is published
    SnsAlerts(sns, arn).publish(finding)

    # Then e-mail (and every protocol without a key) reads the catalogue's words and the facts, not JSON
    (request,) = sent
    assert request["MessageStructure"] == "json" and request["Subject"] == subject_for(finding)
    copies = json.loads(request["Message"])
    text = copies["email"]
    assert copies["default"] == text
    assert entry_for(FindingType.PUBLIC_SHARE).title in text and entry_for(FindingType.PUBLIC_SHARE).remedy in text
    assert "Überbild-基础" in text and "Action taken: revoked" in text and not text.lstrip().startswith("{")
    # and every machine protocol gets the finding JSON, which an SQS subscriber receives as it did before
    for protocol in ("sqs", "lambda", "http", "https", "email-json"):
        assert Finding.model_validate_json(copies[protocol]) == finding
    (received,) = boto3.client("sqs", REGION).receive_message(QueueUrl=url)["Messages"]
    envelope = json.loads(received["Body"])
    assert Finding.model_validate_json(envelope["Message"]) == finding
    assert envelope["MessageAttributes"]["dedup_id"]["Value"]


def test_machines_get_the_json_once_as_default_when_every_copy_would_not_fit(topic) -> None:
    sns, arn, url, sent = topic
    # Given a finding whose JSON fits SNS once but not six times
    finding = _finding(evidence={"grants": [f"{n:012d}" for n in range(MESSAGE_LIMIT // 40)]})

    # When it is published
    SnsAlerts(sns, arn).publish(finding)

    # Then the message fits: the JSON once as default, the text (evidence cut, with a count) for e-mail
    copies = json.loads(sent[0]["Message"])
    assert set(copies) == {"default", "email"} and len(sent[0]["Message"].encode()) <= MESSAGE_LIMIT
    assert Finding.model_validate_json(copies["default"]) == finding
    assert "evidence item(s) not shown here" in copies["email"]
    (received,) = boto3.client("sqs", REGION).receive_message(QueueUrl=url)["Messages"]
    assert Finding.model_validate_json(json.loads(received["Body"])["Message"]) == finding
