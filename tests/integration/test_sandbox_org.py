"""The sandbox's organization: three accounts, member roles in each, member events on the central bus as
EventBridge delivers them, CloudTrail records in the account and region a call was made in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import ACCOUNT, iam_user
from amiguard_cli.sandbox.organization import (
    READER_ROLE,
    member_role_name,
    member_trust_policy,
    trust_admits,
)

OUTSIDE_STACK = "ap-southeast-2"  # a region the central stack does not run in
CENTRAL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard-PublicGuardRole-ABC"
ORG = "o-abcdefghij"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(organization=True) as sb:
        yield sb


def _member_image(sb: Sandbox, account: str, region: str) -> str:
    ec2 = sb.internal_client("ec2", region, account=account)
    return str(
        ec2.register_image(
            Name="golden",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
    )


def test_organization_has_the_security_account_and_two_members_when_the_sandbox_starts(sandbox: Sandbox) -> None:
    # Given the organization sandbox / When it lists its accounts
    accounts = sandbox.internal_client("organizations").list_accounts()["Accounts"]
    # Then the security account (the stack's, moto's default) and two members are ACTIVE
    assert sorted((a["Name"], a["Status"]) for a in accounts) == [
        ("dev", "ACTIVE"),
        ("prod", "ACTIVE"),
        ("security", "ACTIVE"),
    ]
    assert sandbox.org is not None and sandbox.org.account("security").id == ACCOUNT
    assert sandbox.parameters["OrganizationId"] == sandbox.org.id


def test_every_account_holds_the_member_roles_when_deployed(sandbox: Sandbox) -> None:
    assert sandbox.org is not None
    expected = {member_role_name(f) for f in ("public_guard", "tag_enforcer", "dr_replicator", "sweeper")}
    for account in sandbox.org.accounts:
        roles = sandbox.internal_client("iam", account=account.id).list_roles(PathPrefix="/amiguard/")["Roles"]
        names = {role["RoleName"] for role in roles}
        # Then each account has the four acting roles and the reader, under /amiguard/
        assert expected | {READER_ROLE} <= names, account


def test_member_event_reaches_the_central_function_with_its_account_and_region_when_made_outside_the_stack(
    sandbox: Sandbox,
) -> None:
    # Given a member's AMI in a region the central stack does not run in
    assert sandbox.org is not None
    prod = sandbox.org.account("prod").id
    image = _member_image(sandbox, prod, OUTSIDE_STACK)
    # When a person in the member makes it public
    with sandbox.as_identity(iam_user("mallory", prod)):
        sandbox.client("ec2", OUTSIDE_STACK, account=prod).modify_image_attribute(
            ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]}
        )
    record = sandbox.recorder.records[-1]
    delivered = [d for d in sandbox.run() if d.function == "public_guard"]
    deliveries = [d for d in delivered if d.event["detail"]["userIdentity"].get("arn", "").endswith("/mallory")]
    # Then CloudTrail recorded it in the member, in its region, and the central public_guard received it as
    # EventBridge delivers a forwarded event: account and region the member's
    assert (record["recipientAccountId"], record["awsRegion"]) == (prod, OUTSIDE_STACK)
    assert record["userIdentity"]["arn"] == f"arn:aws:iam::{prod}:user/mallory"
    assert [(d.event["account"], d.event["region"]) for d in deliveries] == [(prod, OUTSIDE_STACK)]
    # and its own revocation there, forwarded too, was known for amiguard's
    assert [(d.result or {}).get("reason") for d in delivered if d not in deliveries] == ["amiguard-own-action"]
    assert deliveries[0].event["detail"]["requestParameters"]["imageId"] == image


def test_trust_admits_only_the_named_central_role_with_source_identity_when_evaluated() -> None:
    trust = member_trust_policy(ACCOUNT, ORG, CENTRAL_ROLE)
    assert trust_admits(trust, CENTRAL_ROLE, organization_id=ORG, source_identity="amiguard")
    assert not trust_admits(trust, CENTRAL_ROLE, organization_id=ORG, source_identity=None)
    assert not trust_admits(trust, CENTRAL_ROLE, organization_id=ORG, source_identity="someone")
    assert not trust_admits(trust, CENTRAL_ROLE + "X", organization_id=ORG, source_identity="amiguard")
    assert not trust_admits(trust, CENTRAL_ROLE, organization_id="o-zzzzzzzzzz", source_identity="amiguard")
    other = CENTRAL_ROLE.replace(ACCOUNT, "999999999999")
    assert not trust_admits(trust, other, organization_id=ORG, source_identity="amiguard")
