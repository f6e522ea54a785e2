"""Organization mode, statically on the templates (moto enforces no bus, trust or SCP policy): the central bus
and its policy, the AMI rules on it, the central roles' member-role grants, org/member-roles.yaml's trust and
least privilege, and org/member-forwarder.yaml's patterns, retries and dead letters."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from amiguard.policy.identity import MEMBER_ROLE
from amiguard_cli.sandbox.cfn import (
    Stack,
    evaluate_conditions,
    function_events,
    load_template,
    parameter_values,
    resources_of_type,
)
from amiguard_cli.sandbox.cfn import pattern_matches as matches
from amiguard_cli.sandbox.roles import Resolver

from .sam_tools import REPO_ROOT, SamTools
from .test_event_rules import _load_sample

pytestmark = pytest.mark.infra

MEMBER_ROLES = REPO_ROOT / "org" / "member-roles.yaml"
MEMBER_FORWARDER = REPO_ROOT / "org" / "member-forwarder.yaml"
ORG_TEMPLATES = (MEMBER_ROLES, MEMBER_FORWARDER)
CLOUDTRAIL = "AWS API Call via CloudTrail"
STATE_CHANGE = "EC2 AMI State Change"
ORGANIZATION = "o-a1b2c3d4e5"
CENTRAL_ACCOUNT = "111122223333"
MEMBER_ACCOUNT = "444455556666"
ON_CENTRAL_BUS = {"Fn::If": ["OrganizationMode", {"Ref": "CentralEventBus"}, {"Ref": "AWS::NoValue"}]}
# member role logical id -> (its fixed name, the central function role it mirrors and trusts, that role's parameter)
ACTING = {
    "PublicGuardMemberRole": ("amiguard-public-guard", "PublicGuardRole", "PublicGuardRoleArn"),
    "TagEnforcerMemberRole": ("amiguard-tag-enforcer", "TagEnforcerRole", "TagEnforcerRoleArn"),
    "DrReplicatorMemberRole": ("amiguard-dr-replicator", "DrReplicatorRole", "DrReplicatorRoleArn"),
    "SweeperMemberRole": ("amiguard-sweeper", "SweeperRole", "SweeperRoleArn"),
}
# The parameter combinations that change what a role holds (the same names in both templates).
GRANT_PARAMETERS = [
    {
        "TagEscalation": escalation,
        "DrRegions": regions,
        "ReplicaCleanup": cleanup,
        "StaleImageAction": "deprecate" if escalation == "deprecate" else "none",
    }
    for escalation in ("none", "deprecate", "disable", "deregister")
    for regions, cleanup in (("", "deprecate"), ("us-west-2, eu-west-1", "deprecate"), ("eu-west-1", "deregister"))
]


@pytest.fixture(scope="module")
def member_roles() -> dict[str, Any]:
    return load_template(MEMBER_ROLES)


@pytest.fixture(scope="module")
def member_forwarder() -> dict[str, Any]:
    return load_template(MEMBER_FORWARDER)


# --- every template validates -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ORG_TEMPLATES, ids=lambda path: path.name)
def test_cfn_lint_and_sam_validate_find_nothing_when_run_on_the_organization_templates(
    sam_tools: SamTools, path: Path
) -> None:
    relative = str(path.relative_to(REPO_ROOT))
    for result in (
        sam_tools.run("cfn-lint", relative),
        sam_tools.run("sam", "validate", "--lint", "--template-file", relative),
    ):
        assert result.returncode == 0, result.stdout + result.stderr


# --- the central stack ------------------------------------------------------------------------------------


def test_organization_id_accepts_only_an_organization_id_when_given(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["OrganizationId"]

    assert parameter["Default"] == "" and parameter["AllowedPattern"] == "^$|^o-[a-z0-9]{10,32}$"
    assert template["Conditions"]["OrganizationMode"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "OrganizationId"}, ""]}]}
    assert template["Globals"]["Function"]["Environment"]["Variables"]["AMIGUARD_ORGANIZATION_ID"] == {
        "Ref": "OrganizationId"
    }


def test_central_bus_admits_only_amiguard_forwarding_rules_of_the_organization_when_deployed(
    template: dict[str, Any], member_forwarder: dict[str, Any]
) -> None:
    resources = template["Resources"]
    bus, policy = resources["CentralEventBus"], resources["CentralEventBusPolicy"]
    statement = policy["Properties"]["Statement"]
    condition = statement["Condition"]

    assert bus["Condition"] == policy["Condition"] == "OrganizationMode"
    assert policy["Properties"]["EventBusName"] == {"Ref": "CentralEventBus"}
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Allow", "*", "events:PutEvents")
    assert statement["Resource"] == {"Fn::GetAtt": ["CentralEventBus", "Arn"]}
    assert set(condition) == {"StringEquals", "ArnLike", "ForAllValues:StringEquals"}
    assert condition["StringEquals"] == {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}
    assert condition["ForAllValues:StringEquals"] == {"events:source": ["aws.ec2"]}
    source_arn = condition["ArnLike"]["aws:SourceArn"]["Fn::Sub"].replace("${AWS::Partition}", "aws")
    # The forwarders' rules, on the default bus of any member account and region, and no rule named otherwise.
    for rule in resources_of_type(member_forwarder, "AWS::Events::Rule").values():
        arn = f"arn:aws:events:eu-central-1:{MEMBER_ACCOUNT}:rule/{rule['Properties']['Name']}"
        assert fnmatch.fnmatchcase(arn, source_arn), arn
        assert rule["Properties"]["EventPattern"]["source"] == ["aws.ec2"]
    assert not fnmatch.fnmatchcase(f"arn:aws:events:eu-central-1:{MEMBER_ACCOUNT}:rule/copy-everything", source_arn)


def test_ami_rules_listen_on_the_central_bus_in_organization_mode_and_the_others_on_the_default_bus(
    template: dict[str, Any],
) -> None:
    on_bus, off_bus = set(), set()
    for event in function_events(template, "EventBridgeRule"):
        (on_bus if event.properties["Pattern"]["source"] == ["aws.ec2"] else off_bus).add(event.rule)
        expected = ON_CENTRAL_BUS if event.properties["Pattern"]["source"] == ["aws.ec2"] else None
        assert event.properties.get("EventBusName") == expected, event.rule
    for event in function_events(template, "Schedule"):  # EventBridge runs schedules on the default bus only
        assert "EventBusName" not in event.properties, event.rule

    assert {"PublicGuardFunction.SharingChanged", "DrReplicatorFunction.ImageStateChanged"} <= on_bus
    assert off_bus == {"TamperGuardFunction.Tampering"}


@pytest.mark.parametrize(("member_role", "acting"), ACTING.items())
def test_central_role_may_assume_only_its_own_member_role_in_the_organization_when_organization_mode(
    template: dict[str, Any], member_role: str, acting: tuple[str, str, str]
) -> None:
    name, central_role, _ = acting
    policies = [
        resource
        for resource in resources_of_type(template, "AWS::IAM::RolePolicy").values()
        if resource["Properties"]["RoleName"] == {"Ref": central_role}
        and any(
            "sts:AssumeRole" in _as_list(s["Action"]) for s in resource["Properties"]["PolicyDocument"]["Statement"]
        )
    ]

    [policy] = policies
    assume, name_accounts = policy["Properties"]["PolicyDocument"]["Statement"]
    assert policy["Condition"] == "OrganizationMode"
    assert assume["Effect"] == "Allow"
    assert set(_as_list(assume["Action"])) == {"sts:AssumeRole", "sts:SetSourceIdentity"}
    assert assume["Resource"] == {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::*:role/amiguard/{name}"}
    assert assume["Condition"] == {
        "StringEquals": {"aws:ResourceOrgID": {"Ref": "OrganizationId"}, "sts:SourceIdentity": "amiguard"}
    }
    assert MEMBER_ROLE.match(f"arn:aws:iam::{MEMBER_ACCOUNT}:role/amiguard/{name}")
    # and names the organization's accounts in findings, nothing more of Organizations
    assert (name_accounts["Effect"], name_accounts["Action"]) == ("Allow", "organizations:DescribeAccount")
    assert name_accounts["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:organizations::*:account/${OrganizationId}/*"
    }


def test_no_central_role_may_assume_a_role_when_the_stack_governs_one_account(template: dict[str, Any]) -> None:
    stack = _stack(template, {"OrganizationId": ""}, CENTRAL_ACCOUNT)
    for role_id in resources_of_type(template, "AWS::IAM::Role"):
        actions = {action for action, _, _ in _grants(template, role_id, stack)}
        assert not {a for a in actions if a.startswith("sts:")}, role_id


def test_central_outputs_name_the_role_arns_the_member_roles_trust_when_organization_mode(
    template: dict[str, Any], member_roles: dict[str, Any]
) -> None:
    outputs = template["Outputs"]
    assert outputs["CentralEventBusArn"]["Value"] == {"Fn::GetAtt": ["CentralEventBus", "Arn"]}
    for _, central_role, parameter in ACTING.values():
        assert outputs[parameter]["Value"] == {"Fn::GetAtt": [central_role, "Arn"]}
        assert parameter in member_roles["Parameters"]


# --- org/member-roles.yaml --------------------------------------------------------------------------------


@pytest.mark.parametrize(("member_role", "acting"), ACTING.items())
def test_member_role_trusts_exactly_the_central_function_role_with_source_identity_amiguard_when_assumed(
    member_roles: dict[str, Any], member_role: str, acting: tuple[str, str, str]
) -> None:
    name, _, parameter = acting
    properties = member_roles["Resources"][member_role]["Properties"]
    [trust] = properties["AssumeRolePolicyDocument"]["Statement"]

    assert (properties["RoleName"], properties["Path"]) == (name, "/amiguard/")
    assert trust["Effect"] == "Allow"
    assert trust["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}}
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:SetSourceIdentity"}
    assert trust["Condition"] == {
        "ArnEquals": {"aws:PrincipalArn": {"Ref": parameter}},
        "StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}, "sts:SourceIdentity": "amiguard"},
    }


def test_reader_trusts_the_central_sweeper_and_the_named_readers_with_source_identity_amiguard_when_assumed(
    member_roles: dict[str, Any],
) -> None:
    properties = member_roles["Resources"]["ReaderMemberRole"]["Properties"]
    [trust] = properties["AssumeRolePolicyDocument"]["Statement"]
    readers = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_SecurityAudit_*"
    stack = _member_stack(member_roles, {"ReaderPrincipalArns": readers})
    resolved = _resolver(member_roles, stack).resolve(trust)

    assert (properties["RoleName"], properties["Path"]) == ("amiguard-reader", "/amiguard/")
    assert resolved["Principal"] == {"AWS": f"arn:aws:iam::{CENTRAL_ACCOUNT}:root"}
    assert resolved["Condition"]["ArnLike"] == {"aws:PrincipalArn": [_central_role_arn("SweeperRole"), readers]}
    assert resolved["Condition"]["StringEquals"] == {
        "aws:PrincipalOrgID": ORGANIZATION,
        "sts:SourceIdentity": "amiguard",
    }
    alone = _resolver(member_roles, _member_stack(member_roles, {})).resolve(trust)
    assert alone["Condition"]["ArnLike"] == {"aws:PrincipalArn": [_central_role_arn("SweeperRole")]}


@pytest.mark.parametrize(
    "parameters", GRANT_PARAMETERS, ids=lambda p: "-".join(v.replace(" ", "") or "-" for v in p.values())
)
@pytest.mark.parametrize(("member_role", "acting"), ACTING.items())
def test_member_role_grants_no_more_than_its_central_function_role_when_deployed_alike(
    template: dict[str, Any],
    member_roles: dict[str, Any],
    member_role: str,
    acting: tuple[str, str, str],
    parameters: dict[str, str],
) -> None:
    central_role = acting[1]
    # The same parameters, each template in the account it acts in: ${AWS::AccountId} is that account in both.
    central = _grants(
        template, central_role, _stack(template, {**parameters, "OrganizationId": ORGANIZATION}, MEMBER_ACCOUNT)
    )
    member = _grants(member_roles, member_role, _member_stack(member_roles, {**parameters, "SecurityHub": "enabled"}))
    # Security Hub takes a finding only in the AMI's own account: imported there, through the member role.
    own = {grant for grant in member if not grant[0].startswith("securityhub:")}
    ec2_and_kms = {grant for grant in own if grant[0].split(":")[0] in ("ec2", "kms")}
    central_actions = {action for action, _, _ in central}

    assert ec2_and_kms - central == set(), "same actions, resources and conditions as the central role"
    assert {action for action, _, _ in own} - central_actions == set()
    # and no less: every EC2 call the function makes in its own account it makes in a member, through this role
    # (its keys through EC2, for copies: not the central account's own keys, such as the alert topic's)
    central_ec2 = {g for g in central if g[0].startswith("ec2:") or (g[0].startswith("kms:") and "ViaService" in g[2])}
    assert central_ec2 - ec2_and_kms == set(), "the member role lacks what the central function role grants"


def test_security_hub_grants_exist_only_when_security_hub_is_enabled(member_roles: dict[str, Any]) -> None:
    for member_role in ACTING:
        for enabled in ("enabled", "disabled"):
            granted = _grants(member_roles, member_role, _member_stack(member_roles, {"SecurityHub": enabled}))
            hub = {action for action, _, _ in granted if action.startswith("securityhub:")}
            assert hub == (
                {"securityhub:batchimportfindings", "securityhub:batchupdatefindings"}
                if enabled == "enabled"
                else set()
            )


def test_reader_only_reads_when_deployed(member_roles: dict[str, Any]) -> None:
    granted = _grants(member_roles, "ReaderMemberRole", _member_stack(member_roles, {"SecurityHub": "enabled"}))
    actions = {action for action, _, _ in granted}

    assert "cloudtrail:lookupevents" in actions and "ec2:describeimages" in actions
    for action in actions:
        verb = action.split(":", 1)[1]
        assert verb.startswith(("describe", "get", "lookup")) and "*" not in verb, action


def test_member_roles_are_deployed_in_one_region_per_account_when_stacked(member_roles: dict[str, Any]) -> None:
    [assertion] = member_roles["Rules"]["OneRegionPerAccount"]["Assertions"]

    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "HomeRegion"}, {"Ref": "AWS::Region"}]}
    assert "ONE region per account" in member_roles["Description"]
    assert all("RoleName" in r["Properties"] for r in resources_of_type(member_roles, "AWS::IAM::Role").values())
    # the documented StackSet instance of the roles names one region
    docs = (REPO_ROOT / "docs" / "organization.md").read_text()
    [command] = [
        block
        for block in docs.split("```")
        if "--stack-set-name amiguard-member-roles" in block and "create-stack-instances" in block
    ]
    assert len(command.split("--regions", 1)[1].split()[0].split(",")) == 1


# --- org/member-forwarder.yaml ----------------------------------------------------------------------------


def _central_bus_rules(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        event.properties["Pattern"]
        for event in function_events(template, "EventBridgeRule")
        if event.properties.get("EventBusName") == ON_CENTRAL_BUS
    ]


def _forwarded(rules: list[dict[str, Any]], detail_type: str, field: str) -> set[str]:
    return {value for pattern in rules if pattern["detail-type"] == [detail_type] for value in pattern["detail"][field]}


def test_forwarder_patterns_are_the_central_rules_patterns_when_both_are_deployed(
    template: dict[str, Any], member_forwarder: dict[str, Any]
) -> None:
    central = _central_bus_rules(template)
    forwarder = [
        rule["Properties"]["EventPattern"] for rule in resources_of_type(member_forwarder, "AWS::Events::Rule").values()
    ]

    for field, detail_type in (("eventName", CLOUDTRAIL), ("State", STATE_CHANGE)):
        wanted = _forwarded(central, detail_type, field)
        assert _forwarded(forwarder, detail_type, field) == wanted, f"org/member-forwarder.yaml: {sorted(wanted)}"
    # everything else each pattern says is the same on both sides
    shape = {
        json.dumps(
            {**p, "detail": {k: v for k, v in p["detail"].items() if k not in ("eventName", "State")}}, sort_keys=True
        )
        for p in central
    }
    assert shape == {
        json.dumps(
            {**p, "detail": {k: v for k, v in p["detail"].items() if k not in ("eventName", "State")}}, sort_keys=True
        )
        for p in forwarder
    }


@pytest.mark.parametrize(
    "sample",
    [
        "eventbridge-modifyimageattribute-add-group-all-console-cloudbuddy.json",
        "docexample-eventbridge-ec2-ami-state-change-available.json",
        "docexample-eventbridge-ec2-ami-state-change-failed.json",
    ],
)
def test_event_reaching_a_central_rule_is_forwarded_when_it_happens_in_a_member(
    template: dict[str, Any], member_forwarder: dict[str, Any], sample: str
) -> None:
    event = _load_sample(sample)
    rules = resources_of_type(member_forwarder, "AWS::Events::Rule").values()

    assert any(matches(pattern, event) for pattern in _central_bus_rules(template))
    assert sum(matches(rule["Properties"]["EventPattern"], event) for rule in rules) == 1, "forwarded once"


def test_every_forwarder_rule_targets_the_central_bus_with_role_retries_and_dead_letters_when_deployed(
    member_forwarder: dict[str, Any],
) -> None:
    resources = member_forwarder["Resources"]
    queue_policy = resources["ForwarderDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    dead_letter_sources = {s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0] for s in queue_policy}
    for rule_id, rule in resources_of_type(member_forwarder, "AWS::Events::Rule").items():
        [target] = rule["Properties"]["Targets"]
        assert rule["Properties"]["Name"].startswith("amiguard-forward-"), rule_id
        assert target["Arn"] == {"Ref": "CentralEventBusArn"}, rule_id
        assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}, rule_id
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 3600}, rule_id
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["ForwarderDeadLetterQueue", "Arn"]}, rule_id
        assert rule_id in dead_letter_sources, rule_id
        if CLOUDTRAIL in rule["Properties"]["EventPattern"]["detail-type"]:
            assert rule["Properties"]["EventPattern"]["detail"]["errorCode"] == [{"exists": False}], rule_id


def test_forwarder_role_may_only_put_events_on_the_central_bus_when_assumed_by_eventbridge(
    member_forwarder: dict[str, Any],
) -> None:
    role = member_forwarder["Resources"]["ForwarderRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    [statement] = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]

    assert role["Path"] == "/amiguard/" and "RoleName" not in role  # one per region: IAM names are global
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert (statement["Action"], statement["Resource"]) == ("events:PutEvents", {"Ref": "CentralEventBusArn"})


# --- helpers ----------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _central_role_arn(role: str) -> str:
    return f"arn:aws:iam::{CENTRAL_ACCOUNT}:role/amiguard/amiguard-{role}-ABC"


def _stack(template: dict[str, Any], overrides: dict[str, str], account: str) -> Stack:
    stack = Stack(parameter_values(template, overrides), {}, account, "us-east-1")
    return Stack(stack.parameters, {}, account, "us-east-1", conditions=evaluate_conditions(template, stack))


def _member_stack(template: dict[str, Any], overrides: dict[str, str]) -> Stack:
    required = {
        "HomeRegion": "us-east-1",
        "CentralAccountId": CENTRAL_ACCOUNT,
        "OrganizationId": ORGANIZATION,
        **{parameter: _central_role_arn(role) for _, role, parameter in ACTING.values()},
    }
    return _stack(template, {**required, **overrides}, MEMBER_ACCOUNT)


def _resolver(template: dict[str, Any], stack: Stack) -> Resolver:
    return Resolver(template, stack, {}, stack.conditions)


def _grants(template: dict[str, Any], role_id: str, stack: Stack) -> set[tuple[str, str, str]]:
    """(action, resource, conditions) of every Allow the role holds as deployed with ``stack``'s parameters."""
    resolver = _resolver(template, stack)
    documents = [
        policy["PolicyDocument"] for policy in template["Resources"][role_id]["Properties"].get("Policies", [])
    ]
    for resource in resources_of_type(template, "AWS::IAM::RolePolicy").values():
        if resource["Properties"]["RoleName"] == {"Ref": role_id} and stack.conditions.get(
            resource.get("Condition", ""), True
        ):
            documents.append(resource["Properties"]["PolicyDocument"])
    grants = set()
    for document in documents:
        for statement in resolver.resolve(document)["Statement"]:
            assert statement["Effect"] == "Allow"
            condition = json.dumps(statement.get("Condition", {}), sort_keys=True)
            for action in _as_list(statement["Action"]):
                for resource in _as_list(statement["Resource"]):
                    grants.add((action.lower(), resource, condition))
    return grants
