"""EventBridge rules: coarse CloudTrail patterns that ignore failed calls, retries, dead letters, and routing.

The sandbox creates these patterns in moto straight from template.yaml, so they must be plain data; the
routing table below pins which function each recorded CloudTrail sample (tests/fixtures) reaches.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from amiguard.models.events import wrap_cloudtrail_record as cloudtrail_event
from amiguard_cli.sandbox.cfn import pattern_matches, resources_of_type

from .sam_tools import REPO_ROOT

pytestmark = pytest.mark.infra

SAMPLES_DIR = REPO_ROOT / "tests" / "fixtures" / "cloudtrail-samples"  # verbatim recordings (SOURCES.md)
CLOUDTRAIL = "AWS API Call via CloudTrail"
PUBLIC_GUARD = frozenset({"PublicGuardFunction"})
DR_REPLICATOR = frozenset({"DrReplicatorFunction"})
TAG_ENFORCER = frozenset({"TagEnforcerFunction"})
NONE: frozenset[str] = frozenset()

# sample file -> the functions whose rules must match it (every other function's rules must not).
EXPECTED_ROUTING: dict[str, frozenset[str]] = {
    # Coarse on purpose: tag_enforcer checks tags, dr_replicator the approval; each keeps only ami-* ids.
    "cloudtrail-raw-copyimage-console-trimmed-amilineage.json": TAG_ENFORCER | DR_REPLICATOR,
    "cloudtrail-raw-createimage-console-panther.json": TAG_ENFORCER | DR_REPLICATOR,
    "cloudtrail-raw-createimage-console-trimmed-amilineage.json": TAG_ENFORCER | DR_REPLICATOR,
    "cloudtrail-raw-createtags-resourcesset-c7n.json": TAG_ENFORCER | DR_REPLICATOR,
    "cloudtrail-raw-failed-runinstances-unauthorized-stratus.json": NONE,
    "cloudtrail-raw-modifyimageattribute-add-group-all-error-panther.json": NONE,  # failed call: changed nothing
    "cloudtrail-raw-modifyimageattribute-add-group-all-panther.json": PUBLIC_GUARD,
    "cloudtrail-raw-modifyimageattribute-add-userid-console-cloudconcerns.json": PUBLIC_GUARD,
    "cloudtrail-raw-modifyimageattribute-add-userid-stratus.json": PUBLIC_GUARD,
    # Coarse on purpose: removing a share also reaches public_guard, which decides from current state.
    "cloudtrail-raw-modifyimageattribute-remove-group-all-elastic.json": PUBLIC_GUARD,
    "cloudtrail-raw-modifysnapshotattribute-add-userid-stratus.json": PUBLIC_GUARD,
    "cloudtrail-raw-modifysnapshotattribute-remove-group-all-elastic.json": PUBLIC_GUARD,
    # tag_enforcer tags snapshots not listed while pending; dr_replicator copies or completes a replica.
    "docexample-eventbridge-ec2-ami-state-change-available.json": TAG_ENFORCER | DR_REPLICATOR,
    "docexample-eventbridge-ec2-ami-state-change-deregistered.json": NONE,
    "docexample-eventbridge-ec2-ami-state-change-failed.json": DR_REPLICATOR,
    "eventbridge-modifyimageattribute-add-group-all-console-cloudbuddy.json": PUBLIC_GUARD,
    "eventbridge-modifyimageattribute-remove-group-all-console-cloudbuddy.json": PUBLIC_GUARD,
}

# A successful ModifyImageAttribute making an AMI public, in the shape of the recorded samples.
MAKE_PUBLIC_RECORD: dict[str, Any] = {
    "eventVersion": "1.08",
    "eventSource": "ec2.amazonaws.com",
    "eventName": "ModifyImageAttribute",
    "awsRegion": "us-east-1",
    "eventType": "AwsApiCall",
    "recipientAccountId": "123456789012",
    "requestParameters": {
        "imageId": "ami-0123456789abcdef0",
        "launchPermission": {"add": {"items": [{"group": "all"}]}},
        "attributeType": "launchPermission",
    },
    "responseElements": {"_return": True},
}


def _function_rules(template: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """function logical id -> its EventBridgeRule events as (event name, properties), as written."""
    rules: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for function_id, function in resources_of_type(template, "AWS::Serverless::Function").items():
        for event_name, event in function.get("Properties", {}).get("Events", {}).items():
            if event.get("Type") == "EventBridgeRule":
                rules.setdefault(function_id, []).append((event_name, event["Properties"]))
    return rules


def _routed_to(template: dict[str, Any], event: dict[str, Any]) -> frozenset[str]:
    return frozenset(
        function_id
        for function_id, rules in _function_rules(template).items()
        if any(pattern_matches(properties["Pattern"], event) for _, properties in rules)
    )


def _intrinsics(value: Any, path: str = "Pattern") -> list[str]:
    if isinstance(value, dict):
        found = [f"{path}.{key}" for key in value if key == "Ref" or key == "Condition" or key.startswith("Fn::")]
        return found + [hit for key, item in value.items() for hit in _intrinsics(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [hit for index, item in enumerate(value) for hit in _intrinsics(item, f"{path}[{index}]")]
    return []


def _load_sample(name: str) -> dict[str, Any]:
    sample: dict[str, Any] = json.loads((SAMPLES_DIR / name).read_text())
    return sample if "detail-type" in sample else cloudtrail_event(sample)


def test_every_function_has_an_eventbridge_rule_when_triggered_by_events(template: dict[str, Any]) -> None:
    assert set(_function_rules(template)) >= {"PublicGuardFunction", "TagEnforcerFunction"}


def test_rule_pattern_is_plain_data_when_written_in_template(template: dict[str, Any]) -> None:
    offending = {
        f"{function_id}.{event_name}": hits
        for function_id, rules in _function_rules(template).items()
        for event_name, properties in rules
        if (hits := _intrinsics(properties["Pattern"]))
    }
    assert offending == {}, "intrinsic functions in a rule pattern (the sandbox reads patterns as written)"


def test_cloudtrail_rule_ignores_failed_calls_when_deployed(deployed_template: dict[str, Any]) -> None:
    rules = resources_of_type(deployed_template, "AWS::Events::Rule")
    cloudtrail_rules = {
        rule_id: rule["Properties"]["EventPattern"]
        for rule_id, rule in rules.items()
        if CLOUDTRAIL in rule["Properties"].get("EventPattern", {}).get("detail-type", [])
    }

    assert cloudtrail_rules, "no CloudTrail rule in the deployed template"
    for rule_id, pattern in cloudtrail_rules.items():
        assert pattern["detail"].get("errorCode") == [{"exists": False}], f"{rule_id} also matches failed calls"


def test_rule_target_retries_then_dead_letters_to_own_queue_when_delivery_fails(
    deployed_template: dict[str, Any],
) -> None:
    queues = resources_of_type(deployed_template, "AWS::SQS::Queue")
    policies = resources_of_type(deployed_template, "AWS::SQS::QueuePolicy").values()

    for rule_id, rule in resources_of_type(deployed_template, "AWS::Events::Rule").items():
        for target in rule["Properties"]["Targets"]:
            assert target.get("RetryPolicy", {}).get("MaximumEventAgeInSeconds") == 3600, f"{rule_id}: RetryPolicy"
            dead_letter_arn = target.get("DeadLetterConfig", {}).get("Arn", {})
            queue_id = dead_letter_arn.get("Fn::GetAtt", [None])[0]
            assert queue_id in queues, f"{rule_id}: dead-letter target is not a queue of this stack: {dead_letter_arn}"
            allowed = [
                statement
                for policy in policies
                if {"Ref": queue_id} in policy["Properties"]["Queues"]
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]
                if statement["Effect"] == "Allow"
                and statement["Principal"] == {"Service": "events.amazonaws.com"}
                and statement["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"])
                and statement.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn")
                == {"Fn::GetAtt": [rule_id, "Arn"]}
            ]
            assert allowed, f"{queue_id}'s policy does not let {rule_id} (and only it) send dead letters"


def test_function_retries_twice_then_sends_to_failure_queue_when_invocation_fails(
    deployed_template: dict[str, Any],
) -> None:
    configs = {
        config["Properties"]["FunctionName"]["Ref"]: config["Properties"]
        for config in resources_of_type(deployed_template, "AWS::Lambda::EventInvokeConfig").values()
    }
    queues = resources_of_type(deployed_template, "AWS::SQS::Queue")

    for function_id in resources_of_type(deployed_template, "AWS::Lambda::Function"):
        assert function_id in configs, f"{function_id} has no EventInvokeConfig"
        config = configs[function_id]
        assert config["MaximumRetryAttempts"] == 2
        destination = config["DestinationConfig"]["OnFailure"]["Destination"]
        assert destination.get("Fn::GetAtt", [None])[0] in queues, f"{function_id}: OnFailure is not a queue"


def test_failed_call_reaches_no_function_when_error_code_present(template: dict[str, Any]) -> None:
    failed = copy.deepcopy(MAKE_PUBLIC_RECORD)
    failed.update(
        errorCode="Client.UnauthorizedOperation", errorMessage="You are not authorized", responseElements=None
    )

    assert _routed_to(template, cloudtrail_event(MAKE_PUBLIC_RECORD)) == PUBLIC_GUARD
    assert _routed_to(template, cloudtrail_event(failed)) == NONE


@pytest.mark.parametrize("sample", sorted(EXPECTED_ROUTING))
def test_sample_reaches_expected_functions_when_routed_by_template_rules(template: dict[str, Any], sample: str) -> None:
    assert _routed_to(template, _load_sample(sample)) == EXPECTED_ROUTING[sample]


def test_every_recorded_sample_has_an_expected_route_when_added() -> None:
    samples = {path.name for path in SAMPLES_DIR.glob("*.json")}

    assert samples, f"no CloudTrail samples in {SAMPLES_DIR}"
    assert samples - set(EXPECTED_ROUTING) == set(), "new samples: add them to EXPECTED_ROUTING"
