"""The sandbox refuses, as AWS would, each call a function's own role (in template.yaml) does not allow.

Each test deploys a copy of template.yaml with one role changed, then lets a real event reach the function:
the refused call fails with the service's own AccessDenied error before it is sent, the invocation fails
(Lambda's retries, then the failure destination), and the account is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from amiguard_cli.sandbox.account import Delivery, Sandbox
from amiguard_cli.sandbox.cfn import load_template
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user
from tests.conftest import bake_image
from tests.samples import ROOT

PUBLIC_GUARD_POLICY = ("PublicGuardRole", "public-guard")


@contextmanager
def deployed_with(tmp_path: Path, change: Callable[[dict[str, Any]], None], **parameters: str) -> Iterator[Sandbox]:
    """A sandbox running this checkout's functions with template.yaml as ``change`` leaves it."""
    template = load_template(ROOT / "template.yaml")
    change(template)
    (tmp_path / "template.yaml").write_text(yaml.safe_dump(template, sort_keys=False))
    for shared in ("functions", "layers", "region-forwarder.yaml"):
        (tmp_path / shared).symlink_to(ROOT / shared)
    with Sandbox(tmp_path, parameters={"TrustedPrincipals": "222233334444", **parameters}) as sb:
        yield sb


def statements(template: dict[str, Any], role: str, policy: str) -> list[dict[str, Any]]:
    policies = template["Resources"][role]["Properties"]["Policies"]
    [document] = [p["PolicyDocument"] for p in policies if p["PolicyName"] == policy]
    found: list[dict[str, Any]] = document["Statement"]
    return found


def statement(template: dict[str, Any], role: str, policy: str, sid: str) -> dict[str, Any]:
    [found] = [s for s in statements(template, role, policy) if s.get("Sid") == sid]
    return found


def make_public(sb: Sandbox) -> tuple[str, Delivery]:
    """dev-bob makes a new AMI public; public_guard's delivery of that event."""
    image_id = str(bake_image(sb)["ImageId"])
    sb.run()
    with acting_as(iam_user("dev-bob")):
        sb.client("ec2").modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    [delivery] = [
        d
        for d in sb.run()
        if d.function == "public_guard" and d.event["detail"]["userIdentity"].get("userName") == "dev-bob"
    ]
    return image_id, delivery


def launch_permissions(sb: Sandbox, image_id: str) -> list[dict[str, str]]:
    ec2 = sb.internal_client("ec2")
    return list(ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"])


def test_invocation_fails_with_unauthorized_operation_when_the_role_lacks_the_action(tmp_path: Path) -> None:
    # Given public_guard's role without its ModifyImageAttribute statement
    def drop_revoke(template: dict[str, Any]) -> None:
        kept = [s for s in statements(template, *PUBLIC_GUARD_POLICY) if s["Sid"] != "RevokeImageLaunchPermissions"]
        statements(template, *PUBLIC_GUARD_POLICY)[:] = kept

    with deployed_with(tmp_path, drop_revoke) as sb:
        # When an AMI is made public
        image_id, delivery = make_public(sb)
        # Then the revocation is refused as EC2 refuses it, the invocation fails, and the AMI stays public
        assert delivery.error is not None and "UnauthorizedOperation" in delivery.error
        assert "is not authorized to perform: ec2:ModifyImageAttribute" in delivery.error
        assert delivery in sb.dead_letters
        assert delivery.denied[0].startswith(f"ec2:ModifyImageAttribute on arn:aws:ec2:us-east-1::image/{image_id}")
        assert launch_permissions(sb, image_id) == [{"Group": "all"}]


def test_invocation_fails_when_the_statement_names_other_images(tmp_path: Path) -> None:
    # Given public_guard may revoke launch permissions on one other AMI only (resource-level)
    def scope_to_another_image(template: dict[str, Any]) -> None:
        revoke = statement(template, *PUBLIC_GUARD_POLICY, "RevokeImageLaunchPermissions")
        revoke["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:ec2:*::image/ami-0123456789abcdef0"}

    with deployed_with(tmp_path, scope_to_another_image) as sb:
        # When
        image_id, delivery = make_public(sb)
        # Then
        assert delivery.error is not None and "UnauthorizedOperation" in delivery.error
        assert launch_permissions(sb, image_id) == [{"Group": "all"}]


def test_invocation_fails_when_the_statement_names_another_region(tmp_path: Path) -> None:
    # Given public_guard may revoke only in eu-west-1
    def scope_to_another_region(template: dict[str, Any]) -> None:
        revoke = statement(template, *PUBLIC_GUARD_POLICY, "RevokeImageLaunchPermissions")
        revoke["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:ec2:eu-west-1::image/*"}

    with deployed_with(tmp_path, scope_to_another_region) as sb:
        # When an AMI in us-east-1 is made public
        image_id, delivery = make_public(sb)
        # Then
        assert delivery.error is not None and "UnauthorizedOperation" in delivery.error
        assert launch_permissions(sb, image_id) == [{"Group": "all"}]


def test_explicit_deny_wins_over_the_allow_when_a_policy_denies_the_action(tmp_path: Path) -> None:
    # Given an AWS::IAM::RolePolicy attached to public_guard's role denying ModifyImageAttribute
    def deny_revoke(template: dict[str, Any]) -> None:
        template["Resources"]["PublicGuardDenyPolicy"] = {
            "Type": "AWS::IAM::RolePolicy",
            "Properties": {
                "RoleName": {"Ref": "PublicGuardRole"},
                "PolicyName": "deny-revoke",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Deny", "Action": "ec2:ModifyImageAttribute", "Resource": "*"}],
                },
            },
        }

    with deployed_with(tmp_path, deny_revoke) as sb:
        # When
        image_id, delivery = make_public(sb)
        # Then
        assert delivery.error is not None and "explicit deny" in delivery.error
        assert launch_permissions(sb, image_id) == [{"Group": "all"}]


def test_ledger_write_fails_with_access_denied_exception_when_the_role_may_not_write_the_table(
    tmp_path: Path,
) -> None:
    # Given public_guard's role may no longer record findings
    def drop_ledger(template: dict[str, Any]) -> None:  # the ledger's grants are a RolePolicy of their own
        document = template["Resources"]["PublicGuardLedgerPolicy"]["Properties"]["PolicyDocument"]
        document["Statement"] = [s for s in document["Statement"] if s["Sid"] != "RecordFindingsInLedger"]

    with deployed_with(tmp_path, drop_ledger) as sb:
        # When
        _, delivery = make_public(sb)
        # Then DynamoDB refuses as DynamoDB does: the attempt fails, and no alert goes out un-recorded
        assert "AccessDeniedException" in delivery.failures[0]
        assert delivery.denied[0] == "dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table/amiguard-ledger"
        assert sb.alerts() == []


def test_role_policy_gated_by_a_condition_exists_only_when_its_condition_holds(tmp_path: Path) -> None:
    # Given the deployed template unchanged, TagEscalation=none: tag_enforcer's deprecate policy is not created
    with Sandbox(parameters={"TagEscalation": "none"}) as sb:
        refused = sb.permissions("tag_enforcer")
        # When the escalation is switched on by a stack update
        sb.reconfigure(TagEscalation="deprecate")
        allowed = sb.permissions("tag_enforcer")
    # Then only then may the role deprecate images
    from amiguard_cli.sandbox.iam import Authorization

    request = Authorization("ec2:EnableImageDeprecation", "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0")
    assert not refused.decide(request).allowed
    assert allowed.decide(request).allowed


def test_alert_is_refused_when_the_role_may_not_use_the_alert_topic_key(tmp_path: Path) -> None:
    # Given public_guard may publish to the (encrypted) alert topic but not use its KMS key
    def drop_key(template: dict[str, Any]) -> None:
        kept = [s for s in statements(template, *PUBLIC_GUARD_POLICY) if s["Sid"] != "EncryptAlerts"]
        statements(template, *PUBLIC_GUARD_POLICY)[:] = kept

    with deployed_with(tmp_path, drop_key) as sb:
        # When
        _, delivery = make_public(sb)
        # Then SNS cannot encrypt the message with the publisher's permissions: no alert
        assert "KMSAccessDenied" in delivery.failures[0]
        assert delivery.denied[0].startswith("kms:GenerateDataKey on arn:aws:kms:us-east-1:123456789012:key/")
        assert sb.alerts() == []
