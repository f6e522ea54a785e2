"""Image block public access: moto does not implement it, so the adapter is tested against botocore's Stubber
with the exact requests and responses of the EC2 API."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from amiguard.aws.images import Ec2Images
from amiguard.models.settings import load_settings
from amiguard.services.public_guard import PublicGuard
from tests.samples import load_sample


class Alerts:
    def __init__(self):
        self.published = []

    def publish(self, finding):
        self.published.append(finding)


def disable_event():
    event = load_sample("eventbridge-modifyimageattribute-add-group-all-console-cloudbuddy.json")
    event["detail"]["eventName"] = "DisableImageBlockPublicAccess"
    event["detail"]["requestParameters"] = {"DisableImageBlockPublicAccessRequest": ""}
    return event


@pytest.fixture
def ec2():
    return boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


@pytest.mark.parametrize(("mode", "enables"), [("enforce", True), ("audit", False)])
def test_block_new_sharing_is_restored_only_in_enforce_mode_when_disabled(monkeypatch, ec2, mode, enables):
    monkeypatch.setenv("AMIGUARD_MODE", mode)
    stub = Stubber(ec2)
    stub.add_response("get_image_block_public_access_state", {"ImageBlockPublicAccessState": "unblocked"}, {})
    if enables:
        stub.add_response(
            "enable_image_block_public_access",
            {"ImageBlockPublicAccessState": "block-new-sharing"},
            {"ImageBlockPublicAccessState": "block-new-sharing"},
        )
    alerts = Alerts()
    guard = PublicGuard(settings=load_settings(), images=lambda region: Ec2Images(ec2), alerts=alerts)

    with stub:
        outcome = guard.handle(disable_event())
        guard.publish(outcome)

    stub.assert_no_pending_responses()
    [finding] = alerts.published
    assert finding.type == "block-public-access-disabled" and finding.severity == "critical"
    assert finding.action == ("revoked" if enables else "would-revoke")


def test_nothing_is_done_when_block_public_access_is_already_back_on(monkeypatch, ec2):
    monkeypatch.setenv("AMIGUARD_MODE", "enforce")
    stub = Stubber(ec2)
    stub.add_response("get_image_block_public_access_state", {"ImageBlockPublicAccessState": "block-new-sharing"}, {})
    guard = PublicGuard(settings=load_settings(), images=lambda region: Ec2Images(ec2), alerts=Alerts())

    with stub:
        outcome = guard.handle(disable_event())

    stub.assert_no_pending_responses()
    assert outcome.status == "clean" and outcome.findings == []


@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_declarative_policy_setting_is_reported_not_changed_when_image_block_public_access_is_off(
    monkeypatch, ec2, mode
):
    # Given: an organization's EC2 declarative policy manages the setting (EC2 refuses the account's change)
    monkeypatch.setenv("AMIGUARD_MODE", mode)
    stub = Stubber(ec2)
    stub.add_response(
        "get_image_block_public_access_state",
        {"ImageBlockPublicAccessState": "unblocked", "ManagedBy": "declarative-policy"},
        {},
    )
    alerts = Alerts()
    guard = PublicGuard(settings=load_settings(), images=lambda region: Ec2Images(ec2), alerts=alerts)

    # When: the Stubber answers no EnableImageBlockPublicAccess (a call to it would fail the test)
    with stub:
        outcome = guard.handle(disable_event())
        guard.publish(outcome)

    # Then
    stub.assert_no_pending_responses()
    [finding] = alerts.published
    assert outcome.reason == "managed-by-declarative-policy"
    assert finding.type == "block-public-access-disabled" and finding.action == "none"
    assert finding.evidence == {"state": "unblocked", "managed_by": "declarative-policy"}
    assert "declarative policy" in finding.summary
