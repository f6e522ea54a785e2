"""EBS snapshot block public access: moto does not implement it, so public_guard and the adapter are tested against
botocore's Stubber with the exact requests and responses of the EC2 API."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from amiguard.aws.images import Ec2Images
from amiguard.models.settings import Settings
from amiguard.services.public_guard import PublicGuard
from tests.samples import ROOT

EVENT = ROOT / "events" / "public_guard" / "disable-snapshot-block-public-access.json"


class Alerts:
    def __init__(self):
        self.published = []

    def publish(self, finding):
        self.published.append(finding)


@pytest.fixture
def ec2():
    return boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _guard_disable_event(stub, ec2, mode):
    """public_guard on the DisableSnapshotBlockPublicAccess sample, against ``stub``'s answers (all of them used)."""
    alerts = Alerts()
    guard = PublicGuard(settings=Settings(mode=mode), images=lambda region: Ec2Images(ec2), alerts=alerts)
    with stub:
        outcome = guard.handle(json.loads(EVENT.read_text()))
        guard.publish(outcome)
    stub.assert_no_pending_responses()
    return outcome, alerts.published


@pytest.mark.parametrize(("mode", "enables"), [("enforce", True), ("audit", False)])
def test_snapshot_block_public_access_is_restored_only_in_enforce_mode_when_disabled(ec2, mode, enables):
    stub = Stubber(ec2)
    stub.add_response("get_snapshot_block_public_access_state", {"State": "unblocked", "ManagedBy": "account"}, {})
    if enables:
        stub.add_response(
            "enable_snapshot_block_public_access", {"State": "block-new-sharing"}, {"State": "block-new-sharing"}
        )

    _, [finding] = _guard_disable_event(stub, ec2, mode)

    assert finding.type == "snapshot-block-public-access-disabled" and finding.severity == "critical"
    assert finding.action == ("revoked" if enables else "would-revoke")
    assert finding.actor.endswith("alice@example.com")


@pytest.mark.parametrize("state", ["block-new-sharing", "block-all-sharing"])
def test_nothing_is_done_when_snapshot_block_public_access_is_back_on(ec2, state):
    stub = Stubber(ec2)
    stub.add_response("get_snapshot_block_public_access_state", {"State": state}, {})
    guard = PublicGuard(settings=Settings(), images=lambda region: Ec2Images(ec2), alerts=Alerts())

    with stub:
        outcome = guard.handle(json.loads(EVENT.read_text()))

    stub.assert_no_pending_responses()
    assert outcome.status == "clean" and outcome.findings == []


@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_declarative_policy_setting_is_reported_not_changed_when_snapshot_block_public_access_is_off(ec2, mode):
    # Given: an organization's EC2 declarative policy manages the setting (EC2 refuses the account's change)
    stub = Stubber(ec2)
    stub.add_response(
        "get_snapshot_block_public_access_state", {"State": "unblocked", "ManagedBy": "declarative-policy"}, {}
    )

    # When: the Stubber answers no EnableSnapshotBlockPublicAccess (a call to it would fail the test)
    outcome, [finding] = _guard_disable_event(stub, ec2, mode)

    # Then: the finding names who manages it and does not claim a fix
    assert outcome.reason == "managed-by-declarative-policy"
    assert finding.type == "snapshot-block-public-access-disabled" and finding.action == "none"
    assert finding.evidence == {"state": "unblocked", "managed_by": "declarative-policy"}
    assert "declarative policy, snapshot_block_public_access" in finding.summary


def test_instances_are_counted_per_ami_with_the_image_id_filter_when_asked(ec2):
    stub = Stubber(ec2)
    filters = [
        {"Name": "image-id", "Values": ["ami-0123456789abcdef0", "ami-0fedcba9876543210"]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "shutting-down", "stopping", "stopped"]},
    ]
    reservations = [{"Instances": [{"InstanceId": "i-0123456789abcdef0", "ImageId": "ami-0123456789abcdef0"}]}]
    stub.add_response("describe_instances", {"Reservations": reservations}, {"Filters": filters, "MaxResults": 1000})

    with stub:
        counts = Ec2Images(ec2).instances_by_image(["ami-0fedcba9876543210", "ami-0123456789abcdef0"])

    stub.assert_no_pending_responses()
    assert counts == {"ami-0123456789abcdef0": 1}
