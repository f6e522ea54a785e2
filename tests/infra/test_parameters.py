"""Template parameters: each reaches its AMIGUARD_* variable, and the template rejects what the code would."""

from __future__ import annotations

import re
from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import load_template

from .sam_tools import TEMPLATE

pytestmark = pytest.mark.infra

PARAMETERS: dict[str, Any] = load_template(TEMPLATE)["Parameters"]

ACCOUNT = "111122223333"
ORG = "arn:aws:organizations::111122223333:organization/o-exampleorgid"
OU = "arn:aws:organizations::111122223333:ou/o-exampleorgid/ou-ab12-cdef3456"


def _accepts(parameter: str, value: str) -> bool:
    # CloudFormation applies AllowedPattern (a Java regex) to the whole value, as fullmatch does.
    return re.fullmatch(PARAMETERS[parameter]["AllowedPattern"], value) is not None


@pytest.mark.parametrize(
    "value",
    [
        "",
        ACCOUNT,
        f"{ACCOUNT},444455556666",
        f"{ACCOUNT},{ORG},{OU}",
        f"{ACCOUNT}, {ORG}, {OU}",
        "arn:aws-us-gov:organizations::111122223333:organization/o-exampleorgid",
    ],
)
def test_trusted_principals_accepted_when_ids_and_organization_arns(value: str) -> None:
    assert _accepts("TrustedPrincipals", value)


@pytest.mark.parametrize(
    "value",
    [
        "11112222333",  # 11 digits
        "1111222233334",  # 13 digits
        "garbage",
        f"{ACCOUNT},",  # dangling comma
        f"{ACCOUNT};444455556666",
        "arn:aws:iam::111122223333:root",  # a principal ARN is not an account id
        "arn:aws:organizations::111122223333:organization/o-short",
        "arn:aws:organizations::111122223333:ou/o-exampleorgid/ou-ab12",
        "*",
    ],
)
def test_trusted_principals_rejected_when_not_account_organization_or_ou(value: str) -> None:
    assert not _accepts("TrustedPrincipals", value)


@pytest.mark.parametrize("value", ["", "ami-12345678", "ami-0123456789abcdef0", "ami-12345678, ami-0123456789abcdef0"])
def test_public_allowlist_accepted_when_ami_ids(value: str) -> None:
    assert _accepts("PublicAllowlist", value)


@pytest.mark.parametrize("value", ["ami-1234567", "ami-0123456789ABCDEF0", "snap-12345678", "ami-12345678,", "all"])
def test_public_allowlist_rejected_when_not_ami_ids(value: str) -> None:
    assert not _accepts("PublicAllowlist", value)


@pytest.mark.parametrize(("value", "accepted"), [("", True), ("secops@example.com", True), ("secops", False)])
def test_alert_email_checked_when_given(value: str, accepted: bool) -> None:
    assert _accepts("AlertEmail", value) is accepted


def test_mode_allows_enforce_or_audit_when_deployed_defaulting_to_enforce() -> None:
    assert PARAMETERS["Mode"]["AllowedValues"] == ["enforce", "audit"]
    assert PARAMETERS["Mode"]["Default"] == "enforce"


def test_optional_parameters_default_to_empty_when_not_given() -> None:
    defaults = {name: PARAMETERS[name]["Default"] for name in ("TrustedPrincipals", "PublicAllowlist", "AlertEmail")}

    assert defaults == dict.fromkeys(defaults, "")


def test_every_parameter_is_described_when_shown_to_a_deployer() -> None:
    undescribed = [name for name, parameter in PARAMETERS.items() if len(parameter.get("Description", "")) < 20]

    assert undescribed == []


def test_settings_reach_every_function_when_set_as_parameters(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert {name: value for name, value in variables.items() if name.startswith("AMIGUARD_")} == {
        "AMIGUARD_MODE": {"Ref": "Mode"},
        "AMIGUARD_TRUSTED_PRINCIPALS": {"Ref": "TrustedPrincipals"},
        "AMIGUARD_PUBLIC_ALLOWLIST": {"Ref": "PublicAllowlist"},
        "AMIGUARD_ALERT_TOPIC_ARN": {"Ref": "AlertTopic"},
        "AMIGUARD_SECURITY_HUB": {"Ref": "SecurityHub"},
        "AMIGUARD_EXCEPTIONS": {"Ref": "Exceptions"},
        "AMIGUARD_ORGANIZATION_ID": {"Ref": "OrganizationId"},
        "AMIGUARD_OWN_ROLE_ARNS": {"Fn::Join": [",", [{"Fn::GetAtt": [role, "Arn"]} for role in ROLES]]},
    }


ROLES = ["PublicGuardRole", "TagEnforcerRole", "NotifierRole", "DrReplicatorRole", "SweeperRole", "TamperGuardRole"]


def test_own_role_arns_name_every_function_role_when_deployed(template: dict[str, Any]) -> None:
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]

    assert sorted(f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions) == sorted(ROLES)


def test_alert_email_subscription_exists_only_when_email_given(template: dict[str, Any]) -> None:
    subscriptions = {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SNS::Subscription"
        and resource["Properties"].get("Endpoint") == {"Ref": "AlertEmail"}
    }

    # The address gets the alerts and the alarms (function errors, dead letters, critical findings).
    assert {logical_id: resource.get("Condition") for logical_id, resource in subscriptions.items()} == {
        "AlertEmailSubscription": "HasAlertEmail",
        "AlarmEmailSubscription": "HasAlertEmail",
    }
    assert [subscriptions[s]["Properties"]["TopicArn"] for s in sorted(subscriptions)] == [
        {"Ref": "AlarmTopic"},
        {"Ref": "AlertTopic"},
    ]
    assert template["Conditions"]["HasAlertEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]}
