"""Organization mode in the sandbox account: the AMI rules on the central bus (template.yaml's EventBusName), the
account's own events reaching them through org/member-forwarder.yaml, the stack's own rules verified there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user
from tests.conftest import bake_image
from tests.integration.test_sweeper import SCHEDULED_EVENT
from tests.integration.test_sweeper_organization import _queued, _sqs_event
from tests.integration.test_tamper_guard import cloudtrail_call

ORGANIZATION = "o-a1b2c3d4e5"
CENTRAL_BUS = "amiguard-amiguard-central"  # ${AWS::StackName}-amiguard-central, the sandbox's stack is "amiguard"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(parameters={"Mode": "enforce", "OrganizationId": ORGANIZATION, "RequiredTags": ""}) as sb:
        yield sb


def _buses(sb: Sandbox) -> list[str]:
    return [bus["Name"] for bus in sb.internal_client("events").list_event_buses()["EventBuses"]]


def rules_on(sb: Sandbox, bus: str) -> dict[str, dict[str, Any]]:
    events = sb.internal_client("events")
    return {rule["Name"]: rule for rule in events.list_rules(EventBusName=bus)["Rules"]}


def test_ami_rules_listen_on_the_central_bus_when_organization_id_is_set(sandbox: Sandbox) -> None:
    central, default = rules_on(sandbox, CENTRAL_BUS), rules_on(sandbox, "default")

    for logical_id in (
        "PublicGuardFunctionSharingChanged",
        "TagEnforcerFunctionImagesAndTags",
        "DrReplicatorFunctionImageStateChanged",
    ):
        rule = sandbox.stack().ref(logical_id)
        assert rule in central and rule not in default, logical_id
    # the guard of amiguard's own resources and the schedules stay on the default bus, with the forwarder's rules
    assert sandbox.stack().ref("TamperGuardFunctionTampering") in default
    assert {"AmiApiCallsToCentralBus", "AmiStateChangesToCentralBus"} <= set(default)


def test_public_share_is_revoked_when_the_event_reaches_the_central_bus_through_the_forwarder(
    sandbox: Sandbox,
) -> None:
    image = bake_image(sandbox)
    sandbox.run()
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}]}
        )

    delivered = sandbox.run()

    permissions = sandbox.client("ec2").describe_image_attribute(ImageId=image["ImageId"], Attribute="launchPermission")
    assert permissions["LaunchPermissions"] == []
    # the share, then public_guard's own revocation (recognised as its own, dropped): both through the central bus
    assert {d.rule for d in delivered if d.function == "public_guard"} == {"PublicGuardFunction.SharingChanged"}
    assert [alert.message["type"] for alert in sandbox.alerts()] == ["public-share"]


def test_sweep_finds_its_central_bus_rules_in_place_when_organization_id_is_set(sandbox: Sandbox) -> None:
    environment = sandbox.environment("sweeper")
    assert sandbox.org is not None  # the organization the sandbox made for OrganizationId, with moto's id
    assert environment["AMIGUARD_ORGANIZATION_ID"] == sandbox.org.id
    assert f":rule/{CENTRAL_BUS}/" in environment["AMIGUARD_OWN_RULES"]

    delivery = sandbox.invoke("sweeper", SCHEDULED_EVENT)

    assert delivery.error is None, delivery.error
    gaps = [alert.message for alert in sandbox.alerts() if alert.message["type"] == "amiguard-coverage-gap"]
    assert gaps == [], json.dumps(gaps, indent=1)


def test_sweep_raises_a_gap_when_a_central_bus_rule_is_disabled() -> None:
    with Sandbox(parameters={"Mode": "enforce", "RequiredTags": ""}, organization=True) as sandbox:
        _sweep_raises_a_gap_when_a_central_bus_rule_is_disabled(sandbox)


def _sweep_raises_a_gap_when_a_central_bus_rule_is_disabled(sandbox: Sandbox) -> None:
    central_bus = next(bus for bus in _buses(sandbox) if bus.endswith("-amiguard-central"))
    rule = sandbox.stack().ref("PublicGuardFunctionSharingChanged")
    sandbox.internal_client("events").disable_rule(Name=rule, EventBusName=central_bus)

    # Organization mode: the schedule queues one sweep per account; the central account's sweep verifies the stack.
    sandbox.invoke("sweeper", SCHEDULED_EVENT | {"account": sandbox.account})
    [own] = [m for m in _queued(sandbox) if json.loads(m["Body"])["account"] == sandbox.account]
    sandbox.invoke("sweeper", _sqs_event(sandbox, own))

    [gap] = [alert.message for alert in sandbox.alerts() if alert.message["type"] == "amiguard-coverage-gap"]
    assert gap["evidence"]["resource"] == f"{central_bus}/{rule}"
    assert "disabled" in gap["evidence"]["problem"]


def test_removing_the_central_bus_policy_is_a_critical_tamper_alert_when_organization_mode(sandbox: Sandbox) -> None:
    # Given the central bus's policy statement, removed (every member's events would then be refused)
    statement = {"statementId": "AmiguardForwardersOfTheOrganization", "eventBusName": CENTRAL_BUS}

    # When CloudTrail's record of that call reaches the default bus
    sandbox.put_event(cloudtrail_call("events", "RemovePermission", statement))
    sandbox.run()

    # Then
    [alert] = [a.message for a in sandbox.alerts() if a.message["type"] == "amiguard-tampered"]
    assert alert["severity"] == "critical"
    assert (alert["evidence"]["resource_type"], alert["evidence"]["resource"]) == ("event-bus", CENTRAL_BUS)
