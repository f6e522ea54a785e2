"""``amiguard scan --org``: every active account scanned through its member role, in one report.

moto holds the organization and answers AssumeRole with credentials of the role's account, so each member's AMIs
are its own (MOTO_ACCOUNT_ID is never set: it would override them). moto does not enforce the member roles'
trust; a role that refuses is an AssumeRole that fails, injected where the session is made.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from amiguard.aws.accounts import AccountClients, MemberRoleUnavailable
from amiguard_cli import main as cli
from amiguard_cli.sandbox.moto_gaps import patch_moto

HOME = "us-east-1"


@dataclass
class Organization:
    session: boto3.Session
    management: str
    prod: str
    dev: str
    assumed: list[str]  # RoleArn of every AssumeRole the central credentials made

    def member(self, account: str) -> boto3.Session:
        credentials = self.session.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="test"
        )["Credentials"]
        return boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=HOME,
        )


@pytest.fixture
def organization(monkeypatch: pytest.MonkeyPatch) -> Iterator[Organization]:
    for key, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": HOME}.items():
        monkeypatch.setenv(key, value)
    for key in ("MOTO_ACCOUNT_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        patch_moto()
        session = boto3.Session(region_name=HOME)
        organizations = session.client("organizations")
        management = organizations.create_organization(FeatureSet="ALL")["Organization"]["MasterAccountId"]
        prod, dev = (
            organizations.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"][
                "AccountId"
            ]
            for name in ("prod", "dev")
        )
        assumed: list[str] = []
        real = AccountClients._assume

        def recording(self: AccountClients, account: str) -> Any:
            assumed.append(self.role_arn(account))
            return real(self, account)

        monkeypatch.setattr(AccountClients, "_assume", recording)
        yield Organization(session, management, prod, dev, assumed)


def _public_ami(member: boto3.Session, name: str) -> str:
    ec2 = member.client("ec2")
    image = ec2.register_image(Name=name, RootDeviceName="/dev/xvda", BlockDeviceMappings=[])["ImageId"]
    ec2.create_tags(Resources=[image], Tags=[{"Key": "Owner", "Value": "a"}, {"Key": "CostCenter", "Value": "1"}])
    ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    return image


def _scan(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "report.json"
    code = cli.main(["scan", "--org", "--regions", HOME, "--format", "json", "--output", str(out), *args])
    return code, json.loads(out.read_text()) if out.exists() else {}


def test_every_active_account_is_scanned_through_its_reader_role_when_run_for_the_organization(
    organization: Organization, tmp_path: Path
) -> None:
    # Given a public AMI in each member
    prod_image = _public_ami(organization.member(organization.prod), "prod-image")
    dev_image = _public_ami(organization.member(organization.dev), "dev-image")
    # When
    code, report = _scan(tmp_path)
    # Then each finding names its account, id and name, and every account was read through amiguard-reader
    assert code == 1
    found = {(f["account"], f["account_name"], f["image_id"]) for f in report["findings"] if f["type"] != "x"}
    assert found == {(organization.prod, "prod", prod_image), (organization.dev, "dev", dev_image)}
    assert {a["id"] for a in report["accounts"]} == {organization.management, organization.prod, organization.dev}
    assert {r["account"] for r in report["regions"] if r["scanned"]} == {a["id"] for a in report["accounts"]}
    assert sorted(organization.assumed) == sorted(
        f"arn:aws:iam::{account}:role/amiguard/amiguard-reader"
        for account in (organization.management, organization.prod, organization.dev)
    )
    assert report["errors"] == []


def test_exit_code_is_0_when_every_account_is_clean(organization: Organization, tmp_path: Path) -> None:
    # When
    code, report = _scan(tmp_path)
    # Then
    assert (code, report["findings"], report["errors"]) == (0, [], [])


def _refusing(account: str) -> Any:
    real = AccountClients._assume

    def assume(self: AccountClients, member: str) -> Any:
        if member == account:
            refused = ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")
            raise MemberRoleUnavailable(
                account=member,
                role_arn=self.role_arn(member),
                region="us-east-1",
                cause="role-missing-or-refused",
                code="AccessDenied",
                message="not authorized",
            ) from refused
        return real(self, member)

    return assume


def test_missing_role_is_an_error_for_that_account_only_when_the_others_are_scanned(
    organization: Organization, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the dev account has no reader role, and nothing is wrong elsewhere
    monkeypatch.setattr(AccountClients, "_assume", _refusing(organization.dev))
    # When
    code, report = _scan(tmp_path)
    # Then the scan went on: exit 2 (something could not be checked), the error names the account and the role
    assert code == 2
    [error] = report["errors"]
    assert (error["account"], error["stage"], error["code"]) == (organization.dev, "assume-role", "AccessDenied")
    assert "role/amiguard/amiguard-reader" in error["message"]
    assert {r["account"] for r in report["regions"] if r["scanned"]} == {organization.management, organization.prod}


def test_findings_elsewhere_make_exit_1_when_one_account_refuses(
    organization: Organization, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given
    _public_ami(organization.member(organization.prod), "prod-image")
    monkeypatch.setattr(AccountClients, "_assume", _refusing(organization.dev))
    # When
    code, report = _scan(tmp_path)
    # Then
    assert code == 1
    assert [error["account"] for error in report["errors"]] == [organization.dev]


def test_only_the_accounts_under_the_ou_are_scanned_when_ou_is_given(
    organization: Organization, tmp_path: Path
) -> None:
    # Given prod sits two levels down under the Workloads OU
    organizations = organization.session.client("organizations")
    root = organizations.list_roots()["Roots"][0]["Id"]
    workloads = organizations.create_organizational_unit(ParentId=root, Name="Workloads")["OrganizationalUnit"]["Id"]
    production = organizations.create_organizational_unit(ParentId=workloads, Name="Prod")["OrganizationalUnit"]["Id"]
    organizations.move_account(AccountId=organization.prod, SourceParentId=root, DestinationParentId=production)
    # When
    code, report = _scan(tmp_path, "--ou", workloads)
    # Then
    assert code == 0
    assert [account["id"] for account in report["accounts"]] == [organization.prod]


def test_named_accounts_are_scanned_and_excluded_ones_are_not_when_both_are_given(
    organization: Organization, tmp_path: Path
) -> None:
    # When
    _, report = _scan(
        tmp_path, "--accounts", f"{organization.prod},{organization.dev}", "--exclude-accounts", organization.dev
    )
    # Then
    assert [account["id"] for account in report["accounts"]] == [organization.prod]


def test_fix_acts_through_the_acting_roles_when_fix_is_given(organization: Organization, tmp_path: Path) -> None:
    # Given
    member = organization.member(organization.prod)
    image = _public_ami(member, "prod-image")
    # When
    code, report = _scan(tmp_path, "--fix", "--accounts", organization.prod)
    # Then the share is revoked in the member, through public_guard's member role
    assert code == 1
    assert [f["action"] for f in report["findings"] if f["image_id"] == image] == ["revoked"]
    permissions = member.client("ec2").describe_image_attribute(ImageId=image, Attribute="launchPermission")
    assert permissions["LaunchPermissions"] == []
    assert sorted(arn.rsplit("/", 1)[-1] for arn in organization.assumed) == [
        "amiguard-dr-replicator",
        "amiguard-public-guard",
        "amiguard-tag-enforcer",
    ]


def test_narrowing_options_are_refused_when_org_is_not_given(capsys: pytest.CaptureFixture[str]) -> None:
    # When
    code = cli.main(["scan", "--accounts", "123456789012"])
    # Then
    assert code == 2
    assert "--accounts narrows --org" in capsys.readouterr().err


def test_sandbox_organization_of_three_accounts_is_scanned_when_run_with_org_and_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no AWS account at all
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    out = tmp_path / "report.json"
    # When
    code = cli.main(["scan", "--org", "--sandbox", "--format", "json", "--output", str(out)])
    # Then the three accounts of the embedded organization were scanned, each with its planted problems
    report = json.loads(out.read_text())
    assert code == 1
    assert sorted(account["name"] for account in report["accounts"]) == ["dev", "prod", "security"]
    assert {f["account_name"] for f in report["findings"] if f["type"] == "public-share"} == {"dev", "prod", "security"}
    assert report["errors"] == []
