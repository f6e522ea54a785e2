"""The sweeper reads amiguard's own deployment back: rules enabled with targets, functions there and not
throttled to zero, a trail logging write management events; anything else is an amiguard-coverage-gap."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from amiguard.aws.deployment import AwsDeployment
from amiguard.policy.coverage import coverage_gaps
from amiguard.policy.tampering import OwnResources
from amiguard_cli.sandbox.account import Sandbox
from tests.integration.test_sweeper import SCHEDULED_EVENT


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(parameters={"RequiredTags": ""}) as sb:
        yield sb


def gaps(sb: Sandbox) -> list[dict[str, Any]]:
    """The coverage gaps of one sweep, as alerted."""
    delivery = sb.invoke("sweeper", SCHEDULED_EVENT)
    assert delivery.error is None, delivery.error
    return [alert.message for alert in sb.alerts() if alert.message["type"] == "amiguard-coverage-gap"]


def test_sweep_finds_no_gap_when_the_deployment_is_as_deployed(sandbox: Sandbox) -> None:
    assert gaps(sandbox) == []


def test_sweep_raises_a_critical_gap_when_tamper_guards_rule_is_disabled(sandbox: Sandbox) -> None:
    # Given tamper_guard's own rule, disabled (the guard cannot hear that: the sweeper must see it)
    rule = sandbox.stack().ref("TamperGuardFunctionTampering")
    sandbox.internal_client("events").disable_rule(Name=rule)

    [gap] = gaps(sandbox)

    assert gap["severity"] == "critical"
    assert gap["evidence"] == {"resource_type": "rule", "resource": rule, "problem": gap["evidence"]["problem"]}
    assert "disabled" in gap["evidence"]["problem"]


def test_sweep_raises_a_gap_when_a_rule_lost_its_target(sandbox: Sandbox) -> None:
    rule = sandbox.stack().ref("PublicGuardFunctionSharingChanged")
    sandbox.internal_client("events").remove_targets(Rule=rule, Ids=["public_guard"])

    [gap] = gaps(sandbox)

    assert (gap["evidence"]["resource"], "no target" in gap["evidence"]["problem"]) == (rule, True)


def test_sweep_raises_a_gap_when_a_function_is_throttled_to_zero(sandbox: Sandbox) -> None:
    function = sandbox.stack().ref("PublicGuardFunction")
    sandbox.internal_client("lambda").put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)

    [gap] = gaps(sandbox)

    assert gap["evidence"]["resource"] == function
    assert "reserved concurrency is 0" in gap["evidence"]["problem"]


def test_sweep_raises_a_gap_when_a_function_is_deleted(sandbox: Sandbox) -> None:
    function = sandbox.stack().ref("TamperGuardFunction")
    sandbox.internal_client("lambda").delete_function(FunctionName=function)

    [gap] = gaps(sandbox)

    assert (gap["evidence"]["resource"], gap["evidence"]["problem"]) == (function, "the function is gone")


def test_sweep_raises_a_gap_when_the_trail_stops_logging(sandbox: Sandbox) -> None:
    sandbox.internal_client("cloudtrail").stop_logging(Name=sandbox.trail_arn)

    [gap] = gaps(sandbox)

    assert gap["severity"] == "critical"
    assert gap["evidence"]["resource_type"] == "trail"
    assert gap["evidence"]["problem"].startswith("logging is stopped")


def test_sweep_raises_a_gap_when_the_trail_records_no_write_management_events(sandbox: Sandbox) -> None:
    sandbox.internal_client("cloudtrail").put_event_selectors(
        TrailName=sandbox.trail_arn,
        EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}],
    )

    [gap] = gaps(sandbox)

    assert gap["evidence"]["problem"].startswith("write management events are not recorded")


def test_sweep_raises_a_gap_when_the_named_trail_does_not_exist(sandbox: Sandbox) -> None:
    sandbox.reconfigure(Trail="org-audit-trail")

    [gap] = gaps(sandbox)

    assert (gap["evidence"]["resource"], "no such trail" in gap["evidence"]["problem"]) == ("org-audit-trail", True)


def test_a_check_aws_refuses_is_reported_unverified_never_fine_when_access_is_denied() -> None:
    # Given Lambda refusing GetFunctionConcurrency (moto always answers: Stubber plays AWS's AccessDenied)
    lambda_ = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    events = boto3.client("events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    cloudtrail = boto3.client("cloudtrail", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(lambda_) as lambda_stub, Stubber(events), Stubber(cloudtrail) as trail_stub:
        lambda_stub.add_response(
            "get_function_configuration",
            {"FunctionName": "amiguard-fn", "State": "Active"},
            {"FunctionName": "amiguard-fn"},
        )
        lambda_stub.add_client_error(
            "get_function_concurrency", "AccessDeniedException", "not authorized", 403, {"FunctionName": "amiguard-fn"}
        )
        trail_stub.add_response("describe_trails", {"trailList": []}, {"includeShadowTrails": True})
        own = OwnResources(functions=frozenset({"amiguard-fn"}), rules=frozenset(), roles=frozenset())

        state = AwsDeployment(events=events, lambda_=lambda_, cloudtrail=cloudtrail).read(own)

    found = coverage_gaps(own, state)
    unverified = [gap for gap in found if gap.resource == "amiguard-fn"]
    assert [
        (gap.blind, gap.problem.startswith("could not be verified: AccessDeniedException")) for gap in unverified
    ] == [(False, True)]
