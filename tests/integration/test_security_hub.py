"""Security Hub (SecurityHub=enabled): each finding imported in its AMI's account and region, closed when fixed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from amiguard.aws.securityhub import product_arn
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user
from tests.conftest import bake_image

REQUIRED = (
    "SchemaVersion",
    "Id",
    "ProductArn",
    "GeneratorId",
    "AwsAccountId",
    "CreatedAt",
    "UpdatedAt",
    "Title",
    "Description",
    "Severity",
    "Types",
    "Resources",
    "Remediation",
    "Compliance",
    "Workflow",
)


@pytest.fixture
def hub() -> Iterator[Sandbox]:
    """amiguard in enforce mode with SecurityHub=enabled, Security Hub on in the home region."""
    with Sandbox(parameters={"Mode": "enforce", "SecurityHub": "enabled"}) as sb:
        sb.enable_security_hub()
        yield sb


def _make_public(sb: Sandbox, image_id: str) -> None:
    with acting_as(iam_user("dev-bob")):
        sb.client("ec2").modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    sb.run()


def _by_generator(sb: Sandbox, generator: str) -> list[dict[str, Any]]:
    return [found for found in sb.security_hub_findings() if found["GeneratorId"] == generator]


def test_public_share_is_imported_with_every_required_field_and_closed_when_amiguard_revoked_it(hub: Sandbox) -> None:
    # Given an AMI
    image = bake_image(hub, name="Überbild-基础")
    hub.run()
    hub.alerts()

    # When someone makes it public (amiguard revokes it)
    _make_public(hub, image["ImageId"])

    # Then the alert went out, and Security Hub holds one finding with every required ASFF field
    assert [alert.message["type"] for alert in hub.alerts()] == ["public-share"]
    [finding] = _by_generator(hub, "amiguard/public-share")
    assert not [field for field in REQUIRED if not finding.get(field)]
    assert finding["ProductArn"] == product_arn(hub.home, hub.account)
    assert finding["AwsAccountId"] == hub.account
    assert finding["Id"] == f"amiguard/{hub.account}/{hub.home}/{image['ImageId']}/public-share"
    assert finding["Severity"]["Label"] == "CRITICAL"
    assert "Effects/Data Exposure/Public AMI" in finding["Types"]
    [resource] = finding["Resources"]
    assert resource["Type"] == "AwsEc2Image"
    assert resource["Id"] == f"arn:aws:ec2:{hub.home}::image/{image['ImageId']}"
    assert resource["Details"]["Other"]["Name"] == "Überbild-基础"
    assert finding["Remediation"]["Recommendation"]["Text"]
    # and, the share being revoked, it is closed
    assert finding["Compliance"]["Status"] == "PASSED"
    assert finding["Workflow"]["Status"] == "RESOLVED"


def test_public_share_stays_open_when_audit_mode_only_reports_it(hub: Sandbox) -> None:
    hub.reconfigure(Mode="audit")
    image = bake_image(hub)
    hub.run()

    _make_public(hub, image["ImageId"])

    [finding] = _by_generator(hub, "amiguard/public-share")
    assert finding["Compliance"]["Status"] == "FAILED"
    assert finding["Workflow"]["Status"] == "NEW"


def test_violation_finding_is_closed_when_the_tags_are_fixed(hub: Sandbox) -> None:
    # Given an AMI made without its required tags: a missing-tags finding, open
    ec2 = hub.client("ec2")
    with acting_as(iam_user("dev-bob")):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        image_id = ec2.create_image(InstanceId=instance, Name="untagged")["ImageId"]
    hub.run()
    [finding] = _by_generator(hub, "amiguard/missing-tags")
    assert (finding["Compliance"]["Status"], finding["Workflow"]["Status"]) == ("FAILED", "NEW")

    # When the owner adds them
    with acting_as(iam_user("dev-bob")):
        ec2.create_tags(
            Resources=[image_id],
            Tags=[{"Key": "Owner", "Value": "bob@example.com"}, {"Key": "CostCenter", "Value": "1"}],
        )
    hub.run()

    # Then the same finding is closed, and no finding of its own is added for the resolution
    [finding] = _by_generator(hub, "amiguard/missing-tags")
    assert (finding["Compliance"]["Status"], finding["Workflow"]["Status"]) == ("PASSED", "RESOLVED")
    assert _by_generator(hub, "amiguard/resolved") == []


def test_alert_is_sent_when_security_hub_is_not_enabled_in_the_region() -> None:
    # Given SecurityHub=enabled in amiguard, but Security Hub itself off in the region
    with Sandbox(parameters={"Mode": "enforce", "SecurityHub": "enabled"}) as sb:
        image = bake_image(sb)
        sb.run()
        sb.alerts()

        # When an AMI is made public
        _make_public(sb, image["ImageId"])

        # Then the share is revoked and alerted as ever; Security Hub holds nothing, and nothing failed
        assert [alert.message["type"] for alert in sb.alerts()] == ["public-share"]
        assert (
            sb.client("ec2").describe_image_attribute(ImageId=image["ImageId"], Attribute="launchPermission")[
                "LaunchPermissions"
            ]
            == []
        )
        assert sb.security_hub_findings() == []


def test_nothing_is_imported_when_security_hub_is_disabled_in_amiguard() -> None:
    with Sandbox(parameters={"Mode": "enforce"}) as sb:
        sb.enable_security_hub()
        image = bake_image(sb)
        sb.run()

        _make_public(sb, image["ImageId"])

        assert [alert.message["type"] for alert in sb.alerts()] == ["public-share"]
        assert sb.security_hub_findings() == []
