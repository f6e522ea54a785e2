"""region-forwarder.yaml: what each DR region sends to the home bus must cover what the stack's rules match."""

from __future__ import annotations

from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import load_template, resources_of_type
from amiguard_cli.sandbox.cfn import pattern_matches as matches

from .sam_tools import REPO_ROOT, SamTools
from .test_event_rules import _function_rules, _load_sample

pytestmark = pytest.mark.infra

FORWARDER = REPO_ROOT / "region-forwarder.yaml"
CLOUDTRAIL = "AWS API Call via CloudTrail"


@pytest.fixture(scope="module")
def forwarder() -> dict[str, Any]:
    return load_template(FORWARDER)


def _rules(forwarder: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of_type(forwarder, "AWS::Events::Rule")


def test_cfn_lint_finds_nothing_when_run_on_forwarder(sam_tools: SamTools) -> None:
    result = sam_tools.run("cfn-lint", "region-forwarder.yaml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_cloudtrail_event_name_the_stack_reacts_to_is_forwarded_when_it_happens_in_a_dr_region(
    template: dict[str, Any], forwarder: dict[str, Any]
) -> None:
    stack_names = {
        name
        for rules in _function_rules(template).values()
        for _, properties in rules
        if CLOUDTRAIL in properties["Pattern"].get("detail-type", [])
        # AMI events; tamper_guard's calls concern the home region's own resources (and IAM's us-east-1)
        and properties["Pattern"].get("source") == ["aws.ec2"]
        for name in properties["Pattern"]["detail"]["eventName"]
    }
    forwarded = {
        name
        for rule in _rules(forwarder).values()
        if CLOUDTRAIL in rule["Properties"]["EventPattern"].get("detail-type", [])
        for name in rule["Properties"]["EventPattern"]["detail"]["eventName"]
    }

    assert stack_names - forwarded == set(), "a DR region's event would never reach the home stack"


@pytest.mark.parametrize(
    "sample",
    [
        "docexample-eventbridge-ec2-ami-state-change-available.json",
        "docexample-eventbridge-ec2-ami-state-change-failed.json",
    ],
)
def test_replica_state_change_is_forwarded_when_a_copy_settles_in_a_dr_region(
    forwarder: dict[str, Any], sample: str
) -> None:
    event = _load_sample(sample)

    assert any(matches(rule["Properties"]["EventPattern"], event) for rule in _rules(forwarder).values())


def test_forwarded_cloudtrail_events_exclude_failed_calls_when_matched(forwarder: dict[str, Any]) -> None:
    for rule_id, rule in _rules(forwarder).items():
        pattern = rule["Properties"]["EventPattern"]
        if CLOUDTRAIL in pattern.get("detail-type", []):
            assert pattern["detail"]["errorCode"] == [{"exists": False}], rule_id


def test_every_rule_targets_the_home_bus_with_role_retries_and_dead_letters_when_deployed(
    forwarder: dict[str, Any],
) -> None:
    home_bus = {"Fn::Sub": "arn:${AWS::Partition}:events:${HomeRegion}:${AWS::AccountId}:event-bus/default"}
    for rule_id, rule in _rules(forwarder).items():
        [target] = rule["Properties"]["Targets"]
        assert target["Arn"] == home_bus, rule_id
        assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}, rule_id
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 3600, rule_id
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["ForwarderDeadLetterQueue", "Arn"]}, rule_id


def test_forwarder_role_may_only_put_events_on_the_home_bus_when_assumed_by_eventbridge(
    forwarder: dict[str, Any],
) -> None:
    role = forwarder["Resources"]["ForwarderRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    [statement] = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]

    assert role["Path"] == "/amiguard/"
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == _rules(forwarder)["AmiStateChangesToHome"]["Properties"]["Targets"][0]["Arn"]
