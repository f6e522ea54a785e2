"""The escalation sweep: the service with the real EC2 adapter over a botocore Stubber (moto lacks
EnableImageDeprecation and DescribeImages' DeregistrationProtection), and one run in the sandbox for DisableImage.
Each Stubber test fails if a call is made that is not expected, with other parameters, or not made at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from amiguard.aws.tags import IN_USE_STATES, Ec2Tagging
from amiguard.aws.violations import DynamoViolations
from amiguard.models.findings import Finding
from amiguard.models.settings import load_settings
from amiguard.policy.tagging import ESCALATION_BLOCKED, VIOLATION, VIOLATION_SINCE, ViolationRecord, parse_iso
from amiguard.services.tag_enforcer import TagEnforcer
from amiguard_cli.sandbox.account import Sandbox
from tests.factories import RecordedViolations

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
IMAGE = "ami-0123456789abcdef0"
OVERDUE = "2026-11-23T08:00:00Z"  # 76 h before NOW
RECENT = "2026-11-25T08:00:00Z"  # 28 h before NOW
SCHEDULED = {
    "version": "0",
    "id": "5b7c6f2e-0000-4000-8000-000000000001",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-26T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/amiguard-TagEnforcerFunctionEscalationSweep"],
    "detail": {},
}
SWEEP_QUERY = {"Owners": ["self"], "Filters": [{"Name": "tag-key", "Values": [VIOLATION_SINCE]}]}


class CollectedAlerts:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def publish(self, finding: Finding) -> None:
        self.findings.append(finding)


def described(since: str = OVERDUE, *, protection: str = "disabled", **extra: Any) -> dict[str, Any]:
    tags = {"Owner": "", VIOLATION: "missing:Owner,CostCenter", VIOLATION_SINCE: since} | extra.pop("tags", {})
    return {
        "Images": [
            {
                "ImageId": IMAGE,
                "OwnerId": "123456789012",
                "Name": "web-2026-11",
                "State": "available",
                "DeregistrationProtection": protection,
                "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
                "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}],
            }
            | extra
        ]
    }


def sweep(
    escalation: str,
    script: list[tuple[str, dict[str, Any], dict[str, Any]]],
    mode: str = "enforce",
    recorded: str | None = OVERDUE,
):
    """Run one sweep over a stubbed EC2 client that answers exactly ``script`` (operation, response, params),
    amiguard's record saying the AMI's violation started at ``recorded``."""
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    alerts = CollectedAlerts()
    settings = load_settings(mode=mode, tag_escalation=escalation, tag_grace_hours=72)
    since = parse_iso(recorded)
    records = {IMAGE: ViolationRecord(since, "missing:Owner,CostCenter")} if since else {}
    service = TagEnforcer(
        settings=settings,
        tagging=lambda _: Ec2Tagging(ec2),
        violations=RecordedViolations(records),
        alerts=alerts,
        clock=lambda: NOW,
    )
    with Stubber(ec2) as stub:
        for operation, response, params in script:
            stub.add_response(operation, response, params)
        outcome = service.handle(dict(SCHEDULED))
        service.publish(outcome)
        stub.assert_no_pending_responses()
    return outcome, alerts.findings


def test_overdue_ami_is_deprecated_at_the_next_minute_when_escalation_is_deprecate():
    _outcome, [finding] = sweep(
        "deprecate",
        [
            ("describe_images", described(), SWEEP_QUERY),
            (
                "enable_image_deprecation",
                {"Return": True},
                {"ImageId": IMAGE, "DeprecateAt": NOW.replace(minute=1, second=0)},
            ),
        ],
    )

    assert finding.type == "escalated" and finding.action == "deprecated" and finding.severity == "medium"
    assert finding.evidence["violation_since"] == OVERDUE and finding.evidence["grace_hours"] == 72


def test_overdue_ami_is_not_deprecated_again_when_already_deprecated():
    outcome, findings = sweep(
        "deprecate", [("describe_images", described(DeprecationTime="2026-11-24T00:00:00.000Z"), SWEEP_QUERY)]
    )

    assert findings == [] and outcome.status == "clean"


def test_overdue_ami_is_disabled_when_escalation_is_disable():
    _, [finding] = sweep(
        "disable",
        [("describe_images", described(), SWEEP_QUERY), ("disable_image", {"Return": True}, {"ImageId": IMAGE})],
    )

    assert finding.action == "disabled"


def test_overdue_ami_is_deregistered_keeping_snapshots_when_nothing_uses_it():
    in_use_query = {
        "Filters": [
            {"Name": "image-id", "Values": [IMAGE]},
            {"Name": "instance-state-name", "Values": IN_USE_STATES},
        ],
        "MaxResults": 5,
    }
    _, [finding] = sweep(
        "deregister",
        [
            ("describe_images", described(), SWEEP_QUERY),
            ("describe_instances", {"Reservations": []}, in_use_query),
            ("deregister_image", {"Return": True}, {"ImageId": IMAGE, "DeleteAssociatedSnapshots": False}),
        ],
    )

    assert finding.action == "deregistered" and finding.severity == "high"


def test_deregistration_is_blocked_and_alerted_once_when_protection_is_on():
    blocked = {"Resources": [IMAGE], "Tags": [{"Key": ESCALATION_BLOCKED, "Value": "deregistration protection is on"}]}
    _, [finding] = sweep(
        "deregister",
        [
            ("describe_images", described(protection="enabled-with-cooldown"), SWEEP_QUERY),
            ("create_tags", {}, blocked),
        ],
    )

    assert finding.type == "escalated" and finding.action == "none" and finding.severity == "high"
    assert "deregistration protection" in finding.summary


def test_deregistration_is_blocked_when_instances_launched_from_the_ami_are_running():
    reservations = {"Reservations": [{"Instances": [{"InstanceId": "i-0123456789abcdef0"}]}]}
    reason = "1 instance(s) launched from it are not terminated"
    _, [finding] = sweep(
        "deregister",
        [
            ("describe_images", described(), SWEEP_QUERY),
            ("describe_instances", reservations, None),
            ("create_tags", {}, {"Resources": [IMAGE], "Tags": [{"Key": ESCALATION_BLOCKED, "Value": reason}]}),
        ],
    )

    assert finding.evidence["reason"] == reason


def test_blocked_escalation_is_not_alerted_again_when_already_tagged_blocked():
    already = described(protection="enabled", tags={ESCALATION_BLOCKED: "deregistration protection is on"})

    _outcome, findings = sweep("deregister", [("describe_images", already, SWEEP_QUERY)])

    assert findings == []


def test_ami_within_grace_is_left_alone_when_the_sweep_runs():
    _, findings = sweep("disable", [("describe_images", described(RECENT), SWEEP_QUERY)], recorded=RECENT)

    assert findings == []


def test_nothing_is_escalated_or_even_read_when_in_audit_mode():
    outcome, findings = sweep("deregister", [], mode="audit")

    assert findings == [] and outcome.reason == "audit-mode"


def test_violation_fixed_while_the_event_was_missed_is_resolved_when_the_sweep_finds_it():
    fixed = described(tags={"Owner": "ana", "CostCenter": "cc"})
    delete = {"Resources": [IMAGE], "Tags": [{"Key": VIOLATION}, {"Key": VIOLATION_SINCE}]}

    _, [finding] = sweep("deregister", [("describe_images", fixed, SWEEP_QUERY), ("delete_tags", {}, delete)])

    assert finding.type == "resolved" and finding.severity == "info"


def test_forged_old_start_is_not_escalated_but_reported_and_restored_when_the_record_is_recent():
    # Given amiguard recorded the violation 28 h ago, and someone tagged it as started 76 h ago
    forged = described(RECENT, tags={VIOLATION_SINCE: OVERDUE})
    restore = {"Resources": [IMAGE], "Tags": [{"Key": VIOLATION_SINCE, "Value": RECENT}]}
    # When the sweep runs with TagEscalation=deregister: no DescribeInstances, no DeregisterImage
    _, [finding] = sweep(
        "deregister", [("describe_images", forged, SWEEP_QUERY), ("create_tags", {}, restore)], recorded=RECENT
    )
    # Then
    assert finding.type == "forged-amiguard-tag" and finding.severity == "high"
    assert finding.evidence["forged"] == {VIOLATION_SINCE: OVERDUE}
    assert finding.evidence["recorded_since"] == RECENT


def test_tagged_violation_amiguard_never_recorded_is_recorded_now_and_not_escalated_when_the_sweep_finds_it():
    # Given tags claiming a violation since 76 h ago, and no record of it
    restart = {"Resources": [IMAGE], "Tags": [{"Key": VIOLATION_SINCE, "Value": "2026-11-26T12:00:30Z"}]}
    violations = RecordedViolations()
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    alerts = CollectedAlerts()
    service = TagEnforcer(
        settings=load_settings(tag_escalation="deregister", tag_grace_hours=72),
        tagging=lambda _: Ec2Tagging(ec2),
        violations=violations,
        alerts=alerts,
        clock=lambda: NOW,
    )
    # When
    with Stubber(ec2) as stub:
        stub.add_response("describe_images", described(), SWEEP_QUERY)
        stub.add_response("create_tags", {}, restart)
        service.publish(service.handle(dict(SCHEDULED)))
        stub.assert_no_pending_responses()
    # Then: the grace period starts now, the forgery and the (missed) violation are alerted
    assert [f.type.value for f in alerts.findings] == ["forged-amiguard-tag", "missing-tags"]
    assert violations.records("123456789012", "us-east-1", [IMAGE])[IMAGE].since == NOW.replace(microsecond=0)


def record_violation(sb: Sandbox, image_id: str, violation: str, since: datetime) -> None:
    """amiguard's own adapter writes the record, as tag_enforcer did when it marked the AMI at ``since``."""
    ledger = DynamoViolations(lambda: sb.internal_client("dynamodb"), sb.ledger_table)
    ledger.record(sb.account, sb.home, image_id, violation, since)
    tags = {VIOLATION: violation, VIOLATION_SINCE: since.strftime("%Y-%m-%dT%H:%M:%SZ")}
    sb.internal_client("ec2").create_tags(Resources=[image_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def test_overdue_ami_is_disabled_in_the_sandbox_when_the_schedule_fires():
    with Sandbox(parameters={"Mode": "enforce", "TagEscalation": "disable"}) as sb:
        ec2 = sb.internal_client("ec2")
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        overdue = ec2.create_image(InstanceId=instance, Name="overdue")["ImageId"]
        recent = ec2.create_image(InstanceId=instance, Name="recent")["ImageId"]
        record_violation(sb, overdue, "missing:Owner,CostCenter", datetime.now(UTC) - timedelta(hours=73))
        record_violation(sb, recent, "missing:Owner,CostCenter", datetime.now(UTC))

        delivery = sb.invoke("tag_enforcer", dict(SCHEDULED))

        assert delivery.error is None
        states = {
            i["ImageId"]: i["State"]
            for i in ec2.describe_images(ImageIds=[overdue, recent], IncludeDisabled=True)["Images"]
        }
        assert states == {overdue: "disabled", recent: "available"}
        [alert] = sb.alerts()
        assert alert.message["type"] == "escalated" and alert.message["action"] == "disabled"


@pytest.mark.parametrize("event", [{"detail-type": "Scheduled Event"}, dict(SCHEDULED, region="mars-1")])
def test_malformed_schedule_event_is_dropped_when_it_lacks_source_or_region(event):
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    service = TagEnforcer(
        settings=load_settings(tag_escalation="disable"),
        tagging=lambda _: Ec2Tagging(ec2),
        violations=RecordedViolations(),
        alerts=CollectedAlerts(),
        clock=lambda: NOW,
    )
    with Stubber(ec2):
        assert service.handle(event).status == "dropped"
