"""The stack deploys twice without a collision: in a second region, or under a second name in one region.

Every explicitly named resource must take its name from the stack: the stack name for names unique per
account and region, the stack name and the region for names unique in the whole account (IAM, dashboards,
S3). An unnamed resource gets a generated, unique name and needs nothing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import load_template
from tests.samples import ROOT

pytestmark = pytest.mark.infra

# Names unique in the whole account (every region): resource type -> the property that names it.
ACCOUNT_GLOBAL_NAMES = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::S3::Bucket": "BucketName",
}
# Names unique per account and region.
REGIONAL_NAMES = {
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Serverless::LayerVersion": "LayerName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::CompositeAlarm": "AlarmName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Events::Rule": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::SSM::Parameter": "Name",
    "AWS::Serverless::StateMachine": "Name",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
}


def _name_text(value: Any) -> str:
    """A name with its references spelled ``${...}`` (``!Sub`` as written, ``!Join`` and ``!Ref`` rebuilt)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub if isinstance(sub, str) else sub[0])
    if isinstance(value, dict) and "Ref" in value:
        return "${" + str(value["Ref"]) + "}"
    if isinstance(value, dict) and "Fn::Select" in value and "AWS::StackId" in repr(value):
        return "${AWS::StackId}"  # the stack id's UUID (a name within a length limit): unique per stack and region
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_name_text(part) for part in parts)
    return repr(value)


def named_resources(template: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(logical id, naming property, name as written, account-global?) for every named resource."""
    found = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        kind = resource.get("Type")
        properties = resource.get("Properties") or {}
        for table, is_global in ((ACCOUNT_GLOBAL_NAMES, True), (REGIONAL_NAMES, False)):
            prop = table.get(kind)
            if prop and prop in properties:
                found.append((logical_id, prop, _name_text(properties[prop]), is_global))
    return found


def collisions(template: dict[str, Any]) -> list[str]:
    problems = []
    for logical_id, prop, name, is_global in named_resources(template):
        if "${AWS::StackId}" in name:
            continue  # unique to this stack, in every account and region
        if not re.search(r"\$\{AWS::StackName\}", name):
            problems.append(f"{logical_id}.{prop} = {name!r}: a second stack of this template would take it too")
        elif is_global and not re.search(r"\$\{AWS::Region\}", name):
            problems.append(f"{logical_id}.{prop} = {name!r}: unique in the account, so it must name the region")
    return problems


def test_no_named_resource_collides_when_the_stack_is_deployed_again(template: dict[str, Any]) -> None:
    assert collisions(template) == []


def test_no_generated_resource_collides_when_the_stack_is_deployed_again(deployed_template: dict[str, Any]) -> None:
    # What the SAM transform adds (rules of function events, their permissions) is named by it, or not at all.
    assert collisions(deployed_template) == []


def test_no_forwarder_resource_collides_when_it_is_deployed_in_many_regions() -> None:
    assert collisions(load_template(ROOT / "region-forwarder.yaml")) == []


def test_fixed_names_are_found_when_a_resource_names_itself() -> None:
    # Given what a collision looks like: a fixed role name, a dashboard named by the stack only, a fixed queue
    template = {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "amiguard-sweeper"}},
            "Board": {
                "Type": "AWS::CloudWatch::Dashboard",
                "Properties": {"DashboardName": {"Fn::Sub": "${AWS::StackName}-x"}},
            },
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "amiguard-dlq"}},
            "Fine": {
                "Type": "AWS::IAM::Role",
                "Properties": {"RoleName": {"Fn::Join": ["-", [{"Ref": "AWS::StackName"}, {"Ref": "AWS::Region"}]]}},
            },
        }
    }
    # When / Then
    assert [problem.split(".")[0] for problem in collisions(template)] == ["Role", "Board", "Queue"]
