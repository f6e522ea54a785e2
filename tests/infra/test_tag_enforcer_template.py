"""tag_enforcer in the template: its parameters reject what the code would, reach the function, and its
escalation permissions exist only for the escalation chosen, scoped to images."""

from __future__ import annotations

import re
from typing import Any

import pytest

from amiguard.models.settings import SettingsError, TagEscalation, load_settings
from amiguard_cli.sandbox.cfn import load_template

from .sam_tools import TEMPLATE

pytestmark = pytest.mark.infra

TEMPLATE_DOC: dict[str, Any] = load_template(TEMPLATE)
PARAMETERS: dict[str, Any] = TEMPLATE_DOC["Parameters"]
RESOURCES: dict[str, Any] = TEMPLATE_DOC["Resources"]
IMAGE_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ec2:*::image/*"}
SNAPSHOT_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:snapshot/*"}


def _accepts(parameter: str, value: str) -> bool:
    # CloudFormation applies AllowedPattern (a Java regex) to the whole value, as fullmatch does.
    return re.fullmatch(PARAMETERS[parameter]["AllowedPattern"], value) is not None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Owner",
        "Owner,CostCenter",
        "Owner, CostCenter , Team Name",
        "cost-center:id",
        '{"Environment": {"allowed": ["dev","prod"]}, "Owner": {"pattern": "^[^@]+@example\\\\.com$"}}',
        "K" * 128,
    ],
)
def test_required_tags_accepted_when_keys_or_json(value: str) -> None:
    assert _accepts("RequiredTags", value)
    load_settings(required_tags=value)  # and the code agrees


@pytest.mark.parametrize(
    "value", ["amiguard:created-by", "Owner,amiguard:violation", "Owner,", ",Owner", "Owner,,CostCenter", "K" * 129]
)
def test_required_tags_rejected_when_amiguard_keys_empty_items_or_too_long(value: str) -> None:
    assert not _accepts("RequiredTags", value)


def test_required_tags_default_is_the_contract_default_when_not_given() -> None:
    assert PARAMETERS["RequiredTags"]["Default"] == "Owner,CostCenter"


@pytest.mark.parametrize(
    ("value", "accepted"), [("", True), ("Team,Project", True), ("amiguard:x", False), ("a,", False)]
)
def test_inherit_tags_checked_when_given(value: str, accepted: bool) -> None:
    assert _accepts("InheritTags", value) is accepted


def test_tag_escalation_allows_exactly_the_settings_values_when_deployed() -> None:
    assert PARAMETERS["TagEscalation"]["AllowedValues"] == [member.value for member in TagEscalation]
    assert PARAMETERS["TagEscalation"]["Default"] == "none"


def test_tag_grace_hours_bounds_match_the_settings_when_deployed() -> None:
    grace = PARAMETERS["TagGraceHours"]
    assert (grace["Default"], grace["MinValue"], grace["MaxValue"]) == (72, 1, 8760)
    load_settings(tag_grace_hours=grace["MinValue"])
    load_settings(tag_grace_hours=grace["MaxValue"])
    with pytest.raises(SettingsError, match="AMIGUARD_TAG_GRACE_HOURS"):
        load_settings(tag_grace_hours=grace["MaxValue"] + 1)


def test_tag_settings_reach_tag_enforcer_when_set_as_parameters() -> None:
    variables = RESOURCES["TagEnforcerFunction"]["Properties"]["Environment"]["Variables"]

    assert variables == {
        "AMIGUARD_REQUIRED_TAGS": {"Ref": "RequiredTags"},
        "AMIGUARD_TAG_GRACE_HOURS": {"Ref": "TagGraceHours"},
        "AMIGUARD_TAG_ESCALATION": {"Ref": "TagEscalation"},
        "AMIGUARD_INHERIT_TAGS": {"Ref": "InheritTags"},
        "AMIGUARD_MAX_IMAGE_AGE_DAYS": {"Ref": "MaxImageAgeDays"},
        "AMIGUARD_UNUSED_IMAGE_DAYS": {"Ref": "UnusedImageDays"},
        "AMIGUARD_LEDGER_TABLE": {"Ref": "LedgerTable"},
        "AMIGUARD_REALERT_HOURS": {"Ref": "RealertHours"},
        "AMIGUARD_DEDUP_KEY_SECRET": {"Ref": "AlertDedupKey"},
    }


def test_tag_writes_are_scoped_to_images_and_snapshots_when_granted() -> None:
    statements = RESOURCES["TagEnforcerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    tagging = [s for s in statements if s["Action"] in ("ec2:CreateTags", "ec2:DeleteTags")]

    assert sorted(s["Action"] for s in tagging) == ["ec2:CreateTags", "ec2:DeleteTags"]
    assert all(s["Resource"] == [IMAGE_ARN, SNAPSHOT_ARN] for s in tagging)
    escalation_actions = {"ec2:EnableImageDeprecation", "ec2:DisableImage", "ec2:DeregisterImage"}
    assert not any(
        set(s["Action"] if isinstance(s["Action"], list) else [s["Action"]]) & escalation_actions for s in statements
    ), "escalation actions must not be granted unconditionally"


@pytest.mark.parametrize(
    ("policy", "condition", "action", "escalation"),
    [
        ("TagEnforcerDeprecatePolicy", "TagEscalationDeprecates", "ec2:EnableImageDeprecation", "deprecate"),
        ("TagEnforcerDisablePolicy", "TagEscalationDisables", "ec2:DisableImage", "disable"),
        ("TagEnforcerDeregisterPolicy", "TagEscalationDeregisters", "ec2:DeregisterImage", "deregister"),
    ],
)
def test_escalation_permission_exists_only_when_that_escalation_is_chosen(
    policy: str, condition: str, action: str, escalation: str
) -> None:
    resource = RESOURCES[policy]

    assert resource["Condition"] == condition
    assert TEMPLATE_DOC["Conditions"][condition] == {"Fn::Equals": [{"Ref": "TagEscalation"}, escalation]}
    assert resource["Properties"]["RoleName"] == {"Ref": "TagEnforcerRole"}
    [statement] = resource["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Allow", action, IMAGE_ARN)


def test_escalation_sweep_runs_hourly_when_deployed() -> None:
    sweep = RESOURCES["TagEnforcerFunction"]["Properties"]["Events"]["EscalationSweep"]

    assert sweep["Type"] == "Schedule" and sweep["Properties"]["Schedule"] == "rate(1 hour)"
