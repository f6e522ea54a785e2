"""Security Hub in the template: off by default, granted only when enabled, scoped to this account's product and hub."""

from __future__ import annotations

from typing import Any

import pytest

from amiguard.models.settings import SecurityHub, load_settings
from amiguard_cli.sandbox.cfn import load_template, resources_of_type

from .sam_tools import TEMPLATE

pytestmark = pytest.mark.infra

TEMPLATE_DOC: dict[str, Any] = load_template(TEMPLATE)
RESOURCES: dict[str, Any] = TEMPLATE_DOC["Resources"]
ALERTING_ROLES = {"PublicGuardRole", "TagEnforcerRole", "DrReplicatorRole", "SweeperRole", "TamperGuardRole"}


def test_security_hub_is_off_by_default_when_deployed() -> None:
    parameter = TEMPLATE_DOC["Parameters"]["SecurityHub"]

    assert parameter["Default"] == "disabled" and parameter["AllowedValues"] == ["enabled", "disabled"]
    assert load_settings().security_hub is SecurityHub.DISABLED
    assert TEMPLATE_DOC["Conditions"]["SecurityHubEnabled"] == {"Fn::Equals": [{"Ref": "SecurityHub"}, "enabled"]}


def test_only_the_alerting_roles_may_import_and_only_when_enabled_when_deployed() -> None:
    granting = {
        name: policy
        for name, policy in {
            **resources_of_type(TEMPLATE_DOC, "AWS::IAM::Policy"),
            **resources_of_type(TEMPLATE_DOC, "AWS::IAM::RolePolicy"),
        }.items()
        if "securityhub" in str(policy["Properties"]["PolicyDocument"])
    }
    inline = [
        name for name, role in resources_of_type(TEMPLATE_DOC, "AWS::IAM::Role").items() if "securityhub" in str(role)
    ]

    assert list(granting) == ["SecurityHubFindingsPolicy"] and inline == []
    policy = granting["SecurityHubFindingsPolicy"]
    assert policy["Condition"] == "SecurityHubEnabled"
    assert {role["Ref"] for role in policy["Properties"]["Roles"]} == ALERTING_ROLES
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert {(s["Action"], s["Resource"]["Fn::Sub"]) for s in statements} == {
        (
            "securityhub:BatchImportFindings",
            "arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:product/${AWS::AccountId}/default",
        ),
        ("securityhub:BatchUpdateFindings", "arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:hub/default"),
    }


def test_settings_reach_every_alerting_function_when_set_as_parameters() -> None:
    variables = TEMPLATE_DOC["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["AMIGUARD_SECURITY_HUB"] == {"Ref": "SecurityHub"}
    assert variables["AMIGUARD_EXCEPTIONS"] == {"Ref": "Exceptions"}
    # Lambda allows 4 KB of environment per function, and tamper_guard's already carries ~2 KB of its own names.
    assert TEMPLATE_DOC["Parameters"]["Exceptions"]["MaxLength"] <= 1024
