"""Everything that holds amiguard's messages is encrypted at rest, alerts with a customer-managed key."""

from __future__ import annotations

from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import resources_of_type

pytestmark = pytest.mark.infra


def test_queue_is_encrypted_when_created(deployed_template: dict[str, Any]) -> None:
    queues = resources_of_type(deployed_template, "AWS::SQS::Queue")

    assert queues, "the deployed template has no queue"
    unencrypted = [
        queue_id
        for queue_id, queue in queues.items()
        if queue.get("Properties", {}).get("SqsManagedSseEnabled") is not True
        and not queue.get("Properties", {}).get("KmsMasterKeyId")
    ]
    assert unencrypted == []


def test_topic_uses_customer_managed_key_when_created(deployed_template: dict[str, Any]) -> None:
    topics = resources_of_type(deployed_template, "AWS::SNS::Topic")
    keys = resources_of_type(deployed_template, "AWS::KMS::Key")

    assert topics, "the deployed template has no topic"
    for topic_id, topic in topics.items():
        key = topic["Properties"].get("KmsMasterKeyId")
        # alias/aws/sns cannot be granted to other services or roles: the key must be one of this stack.
        assert isinstance(key, dict) and key.get("Ref") in keys, f"{topic_id} is encrypted with {key!r}"


def test_key_rotates_when_created(deployed_template: dict[str, Any]) -> None:
    keys = resources_of_type(deployed_template, "AWS::KMS::Key")

    assert {key_id: key["Properties"].get("EnableKeyRotation") for key_id, key in keys.items()} == dict.fromkeys(
        keys, True
    )


def test_alert_key_lets_account_administer_and_sns_deliver_when_topic_is_encrypted(
    deployed_template: dict[str, Any],
) -> None:
    statements = deployed_template["Resources"]["AlertKey"]["Properties"]["KeyPolicy"]["Statement"]
    account_root = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}

    administered = [s for s in statements if s["Principal"] == account_root and s["Action"] == "kms:*"]
    sns_usage = [
        s
        for s in statements
        if s["Principal"] == {"Service": "sns.amazonaws.com"}
        and {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(s["Action"])
        and s.get("Condition", {}).get("StringEquals", {}).get("aws:SourceAccount") == {"Ref": "AWS::AccountId"}
    ]
    assert administered, "the account cannot administer (or grant through IAM) the alert key"
    assert sns_usage, "SNS cannot use the alert key, or may for any account"
