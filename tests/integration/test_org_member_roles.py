"""Organization mode: each central function acts in the event's account through that account's member role.

The sandbox's organization (:mod:`amiguard_cli.sandbox.organization`): the security account runs the stack,
two members forward their AMI events to it. Every call a function makes is authorized against the role it is
made with (the function's own, or the member role it assumed), and every AssumeRole against the member role's
existence and trust policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Delivery, Sandbox
from amiguard_cli.sandbox.cloudtrail import ACCOUNT, assumed_role, iam_user

OUTSIDE_STACK = "ap-southeast-2"  # the central stack runs in us-east-1 only
DR_REGION = "us-west-2"
PARAMETERS = {"Mode": "enforce", "DrRegions": DR_REGION}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(organization=True, parameters=PARAMETERS) as sb:
        yield sb


def member(sb: Sandbox, name: str) -> str:
    assert sb.org is not None
    return sb.org.account(name).id


def member_image(sb: Sandbox, account: str, region: str, **tags: str) -> str:
    ec2 = sb.internal_client("ec2", region, account=account)
    image = str(
        ec2.register_image(
            Name=f"golden-{len(tags)}",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
    )
    if tags:
        ec2.create_tags(Resources=[image], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return image


def make_public(sb: Sandbox, account: str, region: str, image: str) -> None:
    with sb.as_identity(iam_user("mallory", account)):
        sb.client("ec2", region, account=account).modify_image_attribute(
            ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]}
        )


def launch_permissions(sb: Sandbox, account: str, region: str, image: str) -> list[dict[str, Any]]:
    ec2 = sb.internal_client("ec2", region, account=account)
    return list(ec2.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"])


def of(deliveries: list[Delivery], function: str) -> list[Delivery]:
    return [d for d in deliveries if d.function == function]


def member_sessions(sb: Sandbox, account: str) -> set[str]:
    """Who made the CloudTrail records of ``account`` through an amiguard member role (with sourceIdentity)."""
    return {
        f"{r['userIdentity']['sessionContext']['sessionIssuer']['arn']}|{r['userIdentity']['sessionContext'].get('sourceIdentity')}"
        for r in sb.recorder.records
        if r["recipientAccountId"] == account and r["userIdentity"]["type"] == "AssumedRole"
    }


# --- each function acting in a member --------------------------------------------------------------------


def test_public_guard_revokes_a_member_share_through_its_member_role_when_made_outside_the_stack_regions(
    sandbox: Sandbox,
) -> None:
    # Given a prod AMI in a region the central stack does not run in
    prod = member(sandbox, "prod")
    image = member_image(sandbox, prod, OUTSIDE_STACK)
    sandbox.alerts()
    # When a person in prod makes it public
    make_public(sandbox, prod, OUTSIDE_STACK, image)
    deliveries = of(sandbox.run(), "public_guard")
    # Then the central public_guard revoked it there, through prod's amiguard-public-guard role, and alerted with
    # prod's account id and name; its own revocation did not trigger it again
    assert launch_permissions(sandbox, prod, OUTSIDE_STACK, image) == []
    assert [d.result["reason"] for d in deliveries if d.result] == ["revoked", "amiguard-own-action"]
    assert all(d.denied == [] and d.error is None for d in deliveries), [
        (d.function, d.denied, d.error) for d in deliveries
    ]
    assert member_sessions(sandbox, prod) == {f"arn:aws:iam::{prod}:role/amiguard/amiguard-public-guard|amiguard"}
    alerts = [a.message for a in sandbox.alerts() if a.message["type"] == "public-share"]
    assert [(a["account"], a["account_name"], a["region"], a["image_id"]) for a in alerts] == [
        (prod, "prod", OUTSIDE_STACK, image)
    ]


def test_central_account_is_acted_on_through_its_own_member_role_when_in_organization_mode(
    sandbox: Sandbox,
) -> None:
    # Given an AMI of the security account itself, in the stack's region
    image = member_image(sandbox, ACCOUNT, "us-east-1")
    # When it is made public there
    make_public(sandbox, ACCOUNT, "us-east-1", image)
    deliveries = of(sandbox.run(), "public_guard")
    # Then public_guard revoked it through the security account's member role, like any member's
    assert launch_permissions(sandbox, ACCOUNT, "us-east-1", image) == []
    assert all(d.denied == [] for d in deliveries)
    revoked = [r for r in sandbox.recorder.records if r["eventName"] == "ModifyImageAttribute"][-1]
    issuer = revoked["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
    assert issuer == f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard-public-guard"


def test_tag_enforcer_tags_a_member_ami_through_its_member_role_when_created_there(sandbox: Sandbox) -> None:
    # Given a dev instance in eu-west-1
    dev = member(sandbox, "dev")
    ec2 = sandbox.client("ec2", "eu-west-1", account=dev)
    instance = sandbox.internal_client("ec2", "eu-west-1", account=dev).run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1
    )["Instances"][0]["InstanceId"]
    # When a person there creates an AMI from it, without the required tags
    with sandbox.as_identity(iam_user("bob", dev)):
        image = ec2.create_image(InstanceId=instance, Name="from-dev")["ImageId"]
    deliveries = of(sandbox.run(), "tag_enforcer")
    # Then tag_enforcer tagged it in dev (who made it, from what) and marked the violation, through dev's role
    tags = {
        t["Key"]: t["Value"]
        for t in sandbox.internal_client("ec2", "eu-west-1", account=dev).describe_tags(
            Filters=[{"Name": "resource-id", "Values": [image]}]
        )["Tags"]
    }
    assert tags["amiguard:created-by"] == f"arn:aws:iam::{dev}:user/bob"
    assert tags["amiguard:source-instance"] == instance
    assert tags["amiguard:violation"].startswith("missing:")
    assert all(d.denied == [] and d.error is None for d in deliveries), [
        (d.function, d.denied, d.error) for d in deliveries
    ]
    assert f"arn:aws:iam::{dev}:role/amiguard/amiguard-tag-enforcer|amiguard" in member_sessions(sandbox, dev)


def test_dr_replicator_copies_a_member_ami_within_the_member_when_approved(sandbox: Sandbox) -> None:
    # Given an approved-to-be prod AMI with its required tags, in the stack's region
    prod = member(sandbox, "prod")
    image = member_image(sandbox, prod, "us-east-1", Owner="team@example.com", CostCenter="42")
    # When a person in prod approves it
    with sandbox.as_identity(iam_user("carol", prod)):
        sandbox.client("ec2", "us-east-1", account=prod).create_tags(
            Resources=[image], Tags=[{"Key": "amiguard:approved", "Value": "true"}]
        )
    deliveries = of(sandbox.run(), "dr_replicator")
    # Then the copy is in prod's DR region (not the security account's), made through prod's member role
    copies = sandbox.internal_client("ec2", DR_REGION, account=prod).describe_images(
        Owners=["self"], Filters=[{"Name": "tag:amiguard:replica-of", "Values": [f"us-east-1/{image}"]}]
    )["Images"]
    assert len(copies) == 1
    # and its completion, an EC2 event in prod's DR region, reached the central dr_replicator and was recorded
    outcomes = [d.result["reason"] for d in deliveries if d.result]
    assert "replication-started" in outcomes and "replication-complete" in outcomes, outcomes
    central = sandbox.internal_client("ec2", DR_REGION).describe_images(
        Owners=["self"], Filters=[{"Name": "tag:amiguard:replica-of", "Values": [f"us-east-1/{image}"]}]
    )["Images"]
    assert central == []
    assert all(d.denied == [] and d.error is None for d in deliveries), [
        (d.function, d.denied, d.error) for d in deliveries
    ]
    assert f"arn:aws:iam::{prod}:role/amiguard/amiguard-dr-replicator|amiguard" in member_sessions(sandbox, prod)


def test_sweeper_sweeps_the_security_account_through_its_member_role_when_scheduled(sandbox: Sandbox) -> None:
    # Given a public AMI of the security account that no event reported
    image = member_image(sandbox, ACCOUNT, "us-east-1")
    sandbox.internal_client("ec2").modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    # When the schedule runs the sweeper, and the SweepQueue's mapping hands it each account's sweep
    dispatched = sandbox.invoke(
        "sweeper",
        {
            "source": "aws.events",
            "detail-type": "Scheduled Event",
            "account": ACCOUNT,
            "region": "us-east-1",
            "detail": {},
        },
    )
    sweeps = [d for d in sandbox.run() if d.function == "sweeper" and d.rule == "SweepQueueMapping"]
    # Then it revoked the share, with the security account's amiguard-sweeper member role
    assert dispatched.error is None and dispatched.denied == []
    assert len(sweeps) == 3 and all(d.error is None and d.denied == [] for d in sweeps), [
        (d.error, d.denied) for d in sweeps
    ]
    assert launch_permissions(sandbox, ACCOUNT, "us-east-1", image) == []
    revoked = [r for r in sandbox.recorder.records if r["eventName"] == "ModifyImageAttribute"][-1]
    issuer = revoked["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
    assert issuer == f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard-sweeper"


def test_lookalike_member_role_is_acted_on_when_its_session_has_no_source_identity(sandbox: Sandbox) -> None:
    # Given a dev AMI and someone in dev with a role named like amiguard's member role, without SourceIdentity
    dev = member(sandbox, "dev")
    image = member_image(sandbox, dev, "us-east-1")
    lookalike = assumed_role("amiguard-public-guard", "attacker", path="/amiguard/", account=dev)
    # When that session makes the AMI public
    with sandbox.as_identity(lookalike):
        sandbox.client("ec2", "us-east-1", account=dev).modify_image_attribute(
            ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]}
        )
    deliveries = of(sandbox.run(), "public_guard")
    # Then public_guard did not take it for its own: the share is revoked
    assert deliveries[0].result is not None and deliveries[0].result["reason"] == "revoked"
    assert launch_permissions(sandbox, dev, "us-east-1", image) == []


def unavailable_alerts(sb: Sandbox) -> list[dict[str, Any]]:
    return [a.message for a in sb.alerts() if a.message["type"] == "member-role-unavailable"]


def assert_retried_and_kept(delivery: Delivery) -> None:
    """The event is an error for Lambda: retried, then in the failure destination, never dropped."""
    assert delivery.error is not None and "MemberRoleUnavailable" in delivery.error
    assert delivery.attempts == 3


def test_event_from_an_account_outside_the_organization_is_a_finding_and_an_error_when_invoked(
    sandbox: Sandbox,
) -> None:
    # Given an event naming an account outside the organization (the bus policy admits none: invoked directly)
    event = {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": "999988887777",
        "time": "2026-12-01T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.10",
            "eventSource": "ec2.amazonaws.com",
            "eventName": "ModifyImageAttribute",
            "awsRegion": "us-east-1",
            "eventID": "0b4c8c2a-3c1e-4d5f-9a61-1f1e2d3c4b5a",
            "eventTime": "2026-12-01T10:00:00Z",
            "recipientAccountId": "999988887777",
            "userIdentity": iam_user("eve", "999988887777"),
            "requestParameters": {
                "imageId": "ami-0123456789abcdef0",
                "attributeType": "launchPermission",
                "launchPermission": {"add": {"items": [{"group": "all"}]}},
            },
            "responseElements": {"_return": True},
        },
    }
    sandbox.alerts()
    delivery = sandbox.invoke("public_guard", event)
    # Then: no role there, so a member-role-unavailable finding and an error (Lambda retries, then the failure queue)
    assert_retried_and_kept(delivery)
    assert [a["account"] for a in unavailable_alerts(sandbox)] == ["999988887777"]


def test_member_finding_is_imported_into_the_member_s_security_hub_through_its_member_role_when_enabled(
    sandbox: Sandbox,
) -> None:
    # Given SecurityHub=enabled, and Security Hub on in a member's region the stack does not run in
    sb = sandbox
    sb.reconfigure(SecurityHub="enabled")
    try:
        prod = member(sb, "prod")
        sb.enable_security_hub(OUTSIDE_STACK, account=prod)
        image = member_image(sb, prod, OUTSIDE_STACK)
        # When a person there makes an AMI public
        make_public(sb, prod, OUTSIDE_STACK, image)
        deliveries = of(sb.run(), "public_guard")
        # Then the finding is in that account's Security Hub, in that region, named for that account
        [found] = [f for f in sb.security_hub_findings(OUTSIDE_STACK, account=prod) if image in f["Id"]]
        assert found["AwsAccountId"] == prod
        assert found["ProductArn"] == f"arn:aws:securityhub:{OUTSIDE_STACK}:{prod}:product/{prod}/default"
        assert [
            f for f in sb.security_hub_findings(OUTSIDE_STACK) if image in f["Id"]
        ] == []  # not the security account's
        # imported with public_guard's member role there (BatchImportFindings authorized against it), nothing refused
        assert all(d.denied == [] and d.error is None for d in deliveries), [(d.denied, d.error) for d in deliveries]
    finally:
        sb.reconfigure(SecurityHub="disabled")
