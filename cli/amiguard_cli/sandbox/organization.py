"""The sandbox's organization: moto Organizations with the security account (the central stack's) and members.

moto answers AssumeRole with credentials of the role's account, and every later call made with them lands in
that account's backend, as long as ``MOTO_ACCOUNT_ID`` is not set (it would override them): so in organization
mode the central account is moto's default one and each member is a real moto account. What moto does not do
for AssumeRole, the sandbox does where the functions call it (:meth:`SandboxOrganization.refusal`): a role that
does not exist, whose trust policy does not admit the caller, or in a suspended account is refused with
``AccessDenied``, as STS refuses it. A region a member has not enabled answers EC2 with ``AuthFailure``.

Events: in every region of every member, rules with the forwarder's patterns (``org/member-forwarder.yaml``
when present, else ``region-forwarder.yaml``: the same AMI events) send the member's AMI events to the central
bus. EventBridge delivers them cross-account unchanged (``account`` and ``region`` stay the member's); here the
rules target a queue in the member, and the dispatcher matches each event, as delivered, against the central
stack's rules (the same way as :mod:`amiguard_cli.sandbox.regions`).

Member roles: ``role/amiguard/amiguard-<function>`` and ``amiguard-reader`` in every account (the central one
too: in organization mode it is handled like any member), each trusting only the central stack's matching role
with ``sts:SourceIdentity`` ``amiguard`` and ``aws:PrincipalOrgID``, as the contract says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session

from amiguard_cli.sandbox.cfn import Stack, load_template, parameter_values
from amiguard_cli.sandbox.queues import drain
from amiguard_cli.sandbox.regions import forwarder_patterns
from amiguard_cli.sandbox.roles import RolePermissions, _condition_holds, role_permissions, wildcard_match

# The functions that act in members (docs/organization.md) and the read-only role of scan and backtest.
ACTING_FUNCTIONS = ("public_guard", "tag_enforcer", "dr_replicator", "sweeper")
READER_ROLE = "amiguard-reader"
ROLE_PATH = "/amiguard/"
SOURCE_IDENTITY = "amiguard"
# The member forwarder's template (engineer orgstack's) when present; region-forwarder.yaml has the same rules.
MEMBER_FORWARDER_TEMPLATES = ("org/member-forwarder.yaml", "region-forwarder.yaml")
CENTRAL_NAME = "security"
MEMBER_NAMES = ("prod", "dev")
# What moto's CreateAccount makes in each new account, trusted by the management account: sandbox plumbing only.
ACCESS_ROLE = "OrganizationAccountAccessRole"
MEMBER_QUEUE = "amiguard-forwarded-to-central"
# The member roles, as the organization's StackSet deploys them in every account (one region per account).
MEMBER_ROLES_TEMPLATE = "org/member-roles.yaml"


def member_role_name(function: str) -> str:
    """``public_guard`` -> ``amiguard-public-guard``."""
    return "amiguard-" + function.replace("_", "-")


def member_trust_policy(central: str, organization_id: str, central_role_arn: str | None) -> dict[str, Any]:
    """The contract's trust: the central account's root as principal, narrowed to exactly one central role
    (``central_role_arn``; None: any of the central account's, the reader's), the organization, and the source
    identity ``amiguard``."""
    condition = {"aws:PrincipalOrgID": organization_id, "sts:SourceIdentity": SOURCE_IDENTITY}
    if central_role_arn:
        condition["aws:PrincipalArn"] = central_role_arn
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CentralAmiguardFunction",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{central}:root"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Condition": {"StringEquals": condition},
            }
        ],
    }


def trust_admits(
    document: Mapping[str, Any], caller_role_arn: str, *, organization_id: str, source_identity: str | None
) -> bool:
    """Whether a role's trust policy lets ``caller_role_arn`` assume it (and set ``source_identity``).

    The part of IAM's evaluation the member roles use: an explicit Deny wins; an Allow names the caller's
    account root, its role ARN or ``*``; its StringEquals/StringLike/ArnEquals/ArnLike conditions hold.
    """
    context = {
        "aws:PrincipalArn": (caller_role_arn,),
        "aws:PrincipalAccount": (caller_role_arn.split(":")[4],),
        "aws:PrincipalOrgID": (organization_id,) if organization_id else None,
        "sts:SourceIdentity": (source_identity,) if source_identity else None,
    }
    actions = ["sts:AssumeRole"] + (["sts:SetSourceIdentity"] if source_identity else [])
    principals = {caller_role_arn, f"arn:aws:iam::{caller_role_arn.split(':')[4]}:root", "*"}

    def applies(statement: Mapping[str, Any], action: str) -> bool:
        listed = statement.get("Action", [])
        listed = [listed] if isinstance(listed, str) else list(listed)
        if not any(wildcard_match(pattern, action, ignore_case=True) for pattern in listed):
            return False
        principal = statement.get("Principal", {})
        named = principal if isinstance(principal, str) else principal.get("AWS", [])
        named = [named] if isinstance(named, str) else list(named)
        if not principals & set(named):
            return False
        for operator, keys in (statement.get("Condition") or {}).items():
            for key, expected in keys.items():
                values = tuple(expected) if isinstance(expected, list) else (str(expected),)
                if not _condition_holds(operator, key, values, context.get(key)):
                    return False
        return True

    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else list(statements)
    for action in actions:
        if any(s.get("Effect") == "Deny" and applies(s, action) for s in statements):
            return False
        if not any(s.get("Effect") == "Allow" and applies(s, action) for s in statements):
            return False
    return True


@dataclass(frozen=True)
class MemberSession:
    """A session of a member role that STS issued to a function (what CloudTrail records for its calls)."""

    account: str
    role_name: str
    session_name: str
    source_identity: str | None


class MemberRoles:
    """``org/member-roles.yaml`` as its StackSet instance in each account deploys it, with the central stack's
    values: what each member role may do there (the sandbox authorizes a member session's calls with it)."""

    def __init__(
        self,
        root: Path,
        central_parameters: Mapping[str, str],
        *,
        central_account: str,
        organization_id: str,
        central_roles: Mapping[str, str],
        home: str,
    ) -> None:
        """``central_roles``: function -> the central function role's ARN (the stack's outputs)."""
        self.template = load_template(root / MEMBER_ROLES_TEMPLATE)
        declared = self.template.get("Parameters") or {}
        # The settings both stacks share (TagEscalation, DrRegions, ReplicaCleanup, SecurityHub) take the central value.
        values = {name: value for name, value in central_parameters.items() if name in declared}
        values |= {"HomeRegion": home, "CentralAccountId": central_account, "OrganizationId": organization_id}
        values |= {_pascal(function) + "RoleArn": arn for function, arn in central_roles.items()}
        self.parameters = parameter_values(self.template, values)
        self.home = home
        self._ids = {
            str((resource.get("Properties") or {}).get("RoleName")): logical_id
            for logical_id, resource in (self.template.get("Resources") or {}).items()
            if resource.get("Type") == "AWS::IAM::Role"
        }
        self._permissions: dict[tuple[str, str], RolePermissions] = {}

    def permissions(self, role_name: str, account: str) -> RolePermissions:
        """Every statement ``role/amiguard/<role_name>`` holds in ``account`` (a role the template does not
        make holds nothing)."""
        key = (role_name, account)
        if key not in self._permissions:
            logical_id = self._ids.get(role_name)
            stack = Stack(self.parameters, {}, account, self.home)
            self._permissions[key] = (
                role_permissions(self.template, logical_id, stack) if logical_id else RolePermissions(role_name, ())
            )
        return self._permissions[key]


def _pascal(function: str) -> str:
    """``public_guard`` -> ``PublicGuard`` (the template's parameter names)."""
    return "".join(part.capitalize() for part in function.split("_"))


@dataclass(frozen=True)
class OrgAccount:
    id: str
    name: str


@dataclass
class SandboxOrganization:
    """The organization, its accounts, their member roles and forwarding rules, and the sandbox's own ways in."""

    internal: boto3.Session  # the central account's plumbing session (never recorded)
    central: str
    root: Path
    id: str = ""
    accounts: list[OrgAccount] = field(default_factory=list)
    suspended: set[str] = field(default_factory=set)
    disabled_regions: set[tuple[str, str]] = field(default_factory=set)  # (account, region) not enabled
    _plumbing: dict[str, boto3.Session] = field(default_factory=dict)
    _queues: list[tuple[str, str, str]] = field(default_factory=list)  # (account, region, queue url)

    # --- the organization -------------------------------------------------------------------------------

    def create(self, member_names: Iterable[str] = MEMBER_NAMES) -> None:
        """Organizations: the central account manages it (named ``security``), one new account per name."""
        client = self.internal.client("organizations")
        self.id = client.create_organization(FeatureSet="ALL")["Organization"]["Id"]
        _rename_account(self.central, CENTRAL_NAME)
        for name in member_names:
            status = client.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]
            self.accounts.append(OrgAccount(str(status["AccountId"]), name))
        self.accounts.insert(0, OrgAccount(self.central, CENTRAL_NAME))

    @property
    def members(self) -> list[OrgAccount]:
        """The accounts other than the central one."""
        return [account for account in self.accounts if account.id != self.central]

    def account(self, name_or_id: str) -> OrgAccount:
        for account in self.accounts:
            if name_or_id in (account.id, account.name):
                return account
        raise KeyError(f"no account {name_or_id!r} in the sandbox's organization")

    def plumbing(self, account: str) -> boto3.Session:
        """A session in ``account`` for seeding and plumbing (not recorded, not authorized against a role)."""
        if account == self.central:
            return self.internal
        if account not in self._plumbing:
            role = f"arn:aws:iam::{account}:role/{ACCESS_ROLE}"
            credentials = self.internal.client("sts").assume_role(RoleArn=role, RoleSessionName="sandbox")[
                "Credentials"
            ]
            self._plumbing[account] = boto3.Session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
                region_name=self.internal.region_name,
            )
        return self._plumbing[account]

    def session_sharing_hooks(self, base: boto3.Session, account: str) -> boto3.Session:
        """A session in ``account`` whose calls pass through ``base``'s hooks (recorded in CloudTrail, as
        made by a person there): the same event emitter, the account's plumbing credentials."""
        credentials = self.plumbing(account).get_credentials()
        assert credentials is not None
        frozen = credentials.get_frozen_credentials()
        shared = botocore.session.Session(
            event_hooks=base._session.get_component("event_emitter"),
            include_builtin_handlers=False,  # already in the shared emitter
        )
        shared.set_credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)
        return boto3.Session(botocore_session=shared, region_name=base.region_name)

    # --- member roles -----------------------------------------------------------------------------------

    def deploy_member_roles(self, central_roles: Mapping[str, str]) -> None:
        """In every account: ``amiguard-<function>`` trusting the central function's role (``central_roles``:
        function -> role ARN), and ``amiguard-reader`` trusting the central account (scan and backtest are run
        by people there)."""
        roles: dict[str, str | None] = {member_role_name(function): arn for function, arn in central_roles.items()}
        roles[READER_ROLE] = None
        for account in self.accounts:
            iam = self.plumbing(account.id).client("iam")
            for name, trusted in roles.items():
                iam.create_role(
                    RoleName=name,
                    Path=ROLE_PATH,
                    AssumeRolePolicyDocument=json.dumps(member_trust_policy(self.central, self.id, trusted)),
                    MaxSessionDuration=3600,
                )

    def refusal(self, caller_role_arn: str, params: Mapping[str, Any]) -> str | None:
        """Why STS refuses a function's AssumeRole (None: it is allowed), where moto would not check."""
        role_arn = str(params.get("RoleArn", ""))
        parts = role_arn.split(":")
        if len(parts) < 6 or parts[2] != "iam":
            return None
        account = parts[4]
        if account in self.suspended:
            return f"account {account} is suspended"
        from moto.iam.models import iam_backends

        try:
            role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
        except Exception:
            return f"{role_arn} does not exist"
        document = role.assume_role_policy_document
        trust = json.loads(document) if isinstance(document, str) else document
        if not trust_admits(
            trust, caller_role_arn, organization_id=self.id, source_identity=params.get("SourceIdentity")
        ):
            return f"the trust policy of {role_arn} does not admit {caller_role_arn}"
        return None

    def organization_of(self, account: str) -> str | None:
        """The organization ``account`` belongs to (``aws:ResourceOrgID``), or None."""
        return self.id if any(a.id == account for a in self.accounts) else None

    def suspend(self, account: str) -> None:
        """Close ``account`` (Organizations CloseAccount: SUSPENDED); STS then refuses every role in it."""
        self.internal.client("organizations").close_account(AccountId=account)
        self.suspended.add(account)

    def disable_region(self, account: str, region: str) -> None:
        """``region`` is an opt-in region ``account`` has not enabled: EC2 there answers ``AuthFailure``."""
        self.disabled_regions.add((account, region))

    # --- events -----------------------------------------------------------------------------------------

    def forward(self, account: str, regions: Iterable[str]) -> None:
        """The member forwarder in each of ``regions`` of ``account``: its AMI events go to the central bus."""
        patterns = forwarder_patterns(load_template(self._forwarder_template()))
        session = self.plumbing(account)
        for region in regions:
            events = session.client("events", region_name=region)
            sqs = session.client("sqs", region_name=region)
            url = sqs.create_queue(QueueName=MEMBER_QUEUE)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for logical_id, pattern in patterns:
                events.put_rule(Name=logical_id, EventPattern=json.dumps(pattern))
                events.put_targets(Rule=logical_id, Targets=[{"Id": "central-bus", "Arn": arn}])
            self._queues.append((account, region, url))

    def _forwarder_template(self) -> Path:
        for name in MEMBER_FORWARDER_TEMPLATES:
            if (self.root / name).is_file():
                return self.root / name
        raise FileNotFoundError(f"none of {', '.join(MEMBER_FORWARDER_TEMPLATES)} found")

    def put_event(self, account: str, region: str, entry: Mapping[str, Any]) -> None:
        """Put one event on ``account``'s default bus in ``region`` (where EC2 and CloudTrail put it)."""
        self.plumbing(account).client("events", region_name=region).put_events(Entries=[dict(entry)])  # type: ignore[list-item]

    def receive(self) -> Iterator[dict[str, Any]]:
        """What the members' forwarding rules delivered to the central bus, as EventBridge delivers it."""
        for account, region, url in self._queues:
            for event in drain(self.plumbing(account).client("sqs", region_name=region), url):
                event.setdefault("account", account)  # moto's default target input leaves it out; AWS keeps it
                yield event

    def name_of(self, account: str) -> str:
        return self.account(account).name


def account_of_access_key(access_key: str) -> str:
    """The account moto serves a call signed with ``access_key`` from (an assumed role's: its account)."""
    from moto.iam.models import get_account_id_from

    return str(get_account_id_from(access_key))


def _rename_account(account: str, name: str) -> None:
    """moto names the management account ``master``; the sandbox's is the security account."""
    from moto.organizations.models import organizations_backends

    for fake in organizations_backends[account]["aws"].accounts:
        if fake.id == account:
            fake.name = name
