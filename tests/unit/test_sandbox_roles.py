"""The sandbox's IAM evaluation: template.yaml's roles as deployed, and IAM's rules for matching a request."""

from __future__ import annotations

from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import Stack, load_template, parameter_values
from amiguard_cli.sandbox.iam import Authorization, Caller, authorizations
from amiguard_cli.sandbox.roles import RolePermissions, Statement, role_of, role_permissions
from tests.samples import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
IMAGE = "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0"
WHERE = Caller("123456789012", "us-west-2")


class _Operation:
    """The two attributes of a botocore OperationModel that :func:`authorizations` reads."""

    def __init__(self, service: str, name: str) -> None:
        self.name = name
        self.service_model = type("ServiceModel", (), {"signing_name": service})()


def permissions(function: str, **parameters: str) -> RolePermissions:
    stack = Stack(parameter_values(TEMPLATE, parameters), {}, "123456789012", "us-east-1")
    return role_permissions(TEMPLATE, role_of(TEMPLATE, function), stack)


def one(raw: dict[str, Any]) -> RolePermissions:
    return RolePermissions("TestRole", (Statement.parse("test", raw),))


def test_direct_create_tags_is_refused_when_the_role_may_tag_only_through_copy_image() -> None:
    # Given dr_replicator's role: CreateTags only with ec2:CreateAction=CopyImage
    role = permissions("dr_replicator")
    copy = {"SourceImageId": "ami-0123456789abcdef0", "SourceRegion": "us-east-1", "Name": "x"}
    tagged = copy | {"TagSpecifications": [{"ResourceType": "image", "Tags": [{"Key": "k", "Value": "v"}]}]}
    # When / Then
    assert role.denied(authorizations(_Operation("ec2", "CopyImage"), tagged, WHERE)) is None
    refused = role.denied(
        authorizations(_Operation("ec2", "CreateTags"), {"Resources": ["ami-0123456789abcdef0"], "Tags": []}, WHERE)
    )
    assert refused is not None and refused.request.action == "ec2:CreateTags"


def test_copy_image_tags_need_create_tags_when_tag_specifications_are_given() -> None:
    # Given a role that may copy but not tag
    role = one({"Effect": "Allow", "Action": "ec2:CopyImage", "Resource": "arn:aws:ec2:*::image/*"})
    params = {"SourceImageId": "ami-0123456789abcdef0", "SourceRegion": "us-east-1"}
    tagged = params | {"TagSpecifications": [{"ResourceType": "image", "Tags": [{"Key": "k", "Value": "v"}]}]}
    # When / Then
    assert role.denied(authorizations(_Operation("ec2", "CopyImage"), params, WHERE)) is None
    refused = role.denied(authorizations(_Operation("ec2", "CopyImage"), tagged, WHERE))
    assert refused is not None and refused.request.context["ec2:CreateAction"] == ("CopyImage",)


@pytest.mark.parametrize(
    ("escalation", "action"),
    [
        ("deprecate", "ec2:EnableImageDeprecation"),
        ("disable", "ec2:DisableImage"),
        ("deregister", "ec2:DeregisterImage"),
    ],
)
def test_escalation_policy_is_attached_only_when_tag_escalation_chooses_it(escalation: str, action: str) -> None:
    request = Authorization(action, IMAGE)

    assert permissions("tag_enforcer", TagEscalation=escalation).decide(request).allowed
    assert not permissions("tag_enforcer", TagEscalation="none").decide(request).allowed


def test_slack_secret_is_readable_only_when_a_secret_is_given() -> None:
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:amiguard/slack-AbCdEf"
    request = Authorization("secretsmanager:GetSecretValue", secret)

    assert permissions("notifier", SlackWebhookSecretArn=secret).decide(request).allowed
    assert not permissions("notifier").decide(request).allowed
    other = Authorization("secretsmanager:GetSecretValue", secret.replace("slack", "other"))
    assert not permissions("notifier", SlackWebhookSecretArn=secret).decide(other).allowed


def test_action_without_resource_level_permissions_is_refused_when_the_statement_names_arns() -> None:
    role = one({"Effect": "Allow", "Action": "ec2:DescribeImages", "Resource": "arn:aws:ec2:*::image/*"})

    assert not role.decide(Authorization("ec2:DescribeImages", "*")).allowed


@pytest.mark.parametrize(
    ("statement", "request_", "allowed"),
    [
        ({"Action": "EC2:describe*", "Resource": "*"}, Authorization("ec2:DescribeImages", "*"), True),
        ({"NotAction": "ec2:Deregister*", "Resource": "*"}, Authorization("ec2:DeregisterImage", IMAGE), False),
        ({"Action": "ec2:*", "NotResource": IMAGE}, Authorization("ec2:DeregisterImage", IMAGE), False),
        ({"Action": "ec2:*", "Resource": "arn:aws:ec2:us-east-?::image/*"}, Authorization("ec2:X", IMAGE), True),
        ({"Action": "ec2:*", "Resource": "arn:aws:ec2:*::IMAGE/*"}, Authorization("ec2:X", IMAGE), False),
        # a key the request lacks fails the condition, except for IfExists and negated operators
        (
            {"Action": "ec2:*", "Resource": "*", "Condition": {"StringEquals": {"ec2:CreateAction": "CopyImage"}}},
            Authorization("ec2:CreateTags", IMAGE),
            False,
        ),
        (
            {"Action": "ec2:*", "Resource": "*", "Condition": {"StringEqualsIfExists": {"ec2:CreateAction": "X"}}},
            Authorization("ec2:CreateTags", IMAGE),
            True,
        ),
        (
            {
                "Action": "ec2:*",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:RequestedRegion": "eu-west-1"}},
            },
            Authorization("ec2:CreateTags", IMAGE, {"aws:RequestedRegion": ("us-east-1",)}),
            True,
        ),
        (
            {"Action": "ec2:*", "Resource": "*", "Condition": {"StringLike": {"aws:RequestedRegion": "eu-*"}}},
            Authorization("ec2:CreateTags", IMAGE, {"aws:RequestedRegion": ("us-east-1",)}),
            False,
        ),
        (
            {
                "Action": "ec2:*",
                "Resource": "*",
                "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": "amiguard:*"}},
            },
            Authorization("ec2:CreateTags", IMAGE, {"aws:TagKeys": ("amiguard:violation", "Owner")}),
            False,
        ),
        (
            {
                "Action": "ec2:*",
                "Resource": "*",
                "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": "amiguard:*"}},
            },
            Authorization("ec2:CreateTags", IMAGE, {"aws:TagKeys": ("amiguard:violation",)}),
            True,
        ),
    ],
)
def test_statement_matches_as_iam_does_when_evaluated(
    statement: dict[str, Any], request_: Authorization, allowed: bool
) -> None:
    assert one({"Effect": "Allow", **statement}).decide(request_).allowed is allowed


def test_resource_tag_condition_reads_the_resource_tags_when_evaluated() -> None:
    role = one(
        {
            "Effect": "Allow",
            "Action": "ec2:DeregisterImage",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/team": "platform"}},
        }
    )
    request = Authorization("ec2:DeregisterImage", IMAGE)

    assert role.decide(request, lambda arn: {"team": "platform"} if arn == IMAGE else {}).allowed
    assert not role.decide(request, lambda arn: {"team": "data"}).allowed
    assert not role.decide(request, lambda arn: {}).allowed
