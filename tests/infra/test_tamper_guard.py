"""tamper_guard's template: it knows every function, rule and role of the stack (the sweeper the same, but
itself), and its rule routes every call the code watches, with Lambda's versioned event names."""

from __future__ import annotations

from typing import Any

import pytest

from amiguard.policy.tampering import WATCHED_CALLS
from amiguard_cli.sandbox.cfn import (
    event_routes,
    function_events,
    functions_matching,
    resources_of_type,
    serverless_functions,
)

pytestmark = pytest.mark.infra

# What CloudTrail records for the Lambda APIs watched (AWS Lambda developer guide, "Lambda management events").
LAMBDA_EVENT_NAMES = {
    "DeleteFunction": "DeleteFunction20150331",
    "PutFunctionConcurrency": "PutFunctionConcurrency20171031",
    "DeleteFunctionConcurrency": "DeleteFunctionConcurrency20171031",
    "UpdateFunctionConfiguration": "UpdateFunctionConfiguration20150331v2",
    "UpdateFunctionCode": "UpdateFunctionCode20150331v2",
    "RemovePermission": "RemovePermission20150331v2",
}


def _listed(environment: dict[str, Any], variable: str) -> list[Any]:
    value = environment[variable]
    assert set(value) == {"Fn::Join"} and value["Fn::Join"][0] == ",", f"{variable}: a !Join of the stack's names"
    return list(value["Fn::Join"][1])


def _environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    return dict(serverless_functions(template)[function]["Environment"]["Variables"])


def _named_by_stack_id(template: dict[str, Any]) -> Any:
    return serverless_functions(template)["tamper_guard"]["FunctionName"]


def _rules(template: dict[str, Any]) -> set[str]:
    """Logical ids of the rules SAM generates: every EventBridgeRule and Schedule event of every function."""
    return {
        event.rule.replace(".", "")
        for kind in ("EventBridgeRule", "Schedule")
        for event in function_events(template, kind)
    }


def test_tamper_guard_knows_every_function_rule_and_role_when_deployed(template: dict[str, Any]) -> None:
    environment = _environment(template, "tamper_guard")
    functions = set(resources_of_type(template, "AWS::Serverless::Function")) - {"TamperGuardFunction"}
    roles = {props["Role"]["Fn::GetAtt"][0] for props in serverless_functions(template).values()}

    listed_functions = _listed(environment, "AMIGUARD_OWN_FUNCTIONS")
    listed_rules = _listed(environment, "AMIGUARD_OWN_RULES")

    assert {item["Ref"] for item in listed_functions if "Ref" in item} == functions
    assert _named_by_stack_id(template) in listed_functions
    assert {item["Fn::GetAtt"][0] for item in listed_rules if "Fn::GetAtt" in item} == _rules(template) - {
        "TamperGuardFunctionTampering"
    }
    assert _named_by_stack_id(template) in listed_rules
    assert {item["Ref"] for item in _listed(environment, "AMIGUARD_OWN_ROLES")} == roles


def test_tamper_guard_rule_and_function_share_the_stack_id_name_when_deployed(template: dict[str, Any]) -> None:
    [rule] = [event for event in function_events(template, "EventBridgeRule") if event.function == "tamper_guard"]

    assert rule.properties["RuleName"] == _named_by_stack_id(template)


def test_sweeper_verifies_what_tamper_guard_watches_but_itself_when_deployed(template: dict[str, Any]) -> None:
    guard, sweeper = _environment(template, "tamper_guard"), _environment(template, "sweeper")

    for variable, own in (
        ("AMIGUARD_OWN_FUNCTIONS", {"Ref": "SweeperFunction"}),
        ("AMIGUARD_OWN_RULES", {"Fn::GetAtt": ["SweeperFunctionSweep", "Arn"]}),
    ):
        assert _listed(sweeper, variable) == [item for item in _listed(guard, variable) if item != own]
    assert sweeper["AMIGUARD_TRAIL"] == guard["AMIGUARD_TRAIL"] == {"Ref": "Trail"}


@pytest.mark.parametrize("watched", sorted(WATCHED_CALLS), ids=lambda watched: watched[1])
def test_every_watched_call_reaches_tamper_guard_when_cloudtrail_records_it(
    template: dict[str, Any], watched: tuple[str, str]
) -> None:
    source, api = watched
    event = {
        "source": "aws." + source.split(".", 1)[0],
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {"eventSource": source, "eventName": LAMBDA_EVENT_NAMES.get(api, api)},
    }

    assert functions_matching(event_routes(template), event) == {"tamper_guard"}
