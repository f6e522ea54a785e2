"""Recognising amiguard's own calls: exactly the stack's roles, or member roles with sourceIdentity amiguard."""

from __future__ import annotations

from typing import Any

import pytest

from amiguard.models.events import UserIdentity
from amiguard.policy.identity import OwnRoles, is_own_call

ACCOUNT = "123456789012"
STACK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard-PublicGuardRole-1A2B3C4D5E6F"
MEMBER_ROLE = "arn:aws:iam::444455556666:role/amiguard/amiguard-public-guard"


def session_of(role_arn: str, *, source_identity: str | None = None, kind: str = "AssumedRole") -> UserIdentity:
    account = role_arn.split(":")[4]
    name = role_arn.rsplit("/", 1)[-1]
    context: dict[str, Any] = {"sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": account}}
    if source_identity is not None:
        context["sourceIdentity"] = source_identity
    return UserIdentity.model_validate(
        {
            "type": kind,
            "arn": f"arn:aws:sts::{account}:assumed-role/{name}/session",
            "accountId": account,
            "sessionContext": context,
        }
    )


STACK = OwnRoles.of([STACK_ROLE])
ORGANIZATION = OwnRoles.of([STACK_ROLE], organization=True)


def test_call_is_own_when_its_issuer_is_exactly_a_stack_role():
    assert is_own_call(session_of(STACK_ROLE), STACK)


@pytest.mark.parametrize(
    "issuer",
    [
        f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard-public-guard",  # an attacker's role under amiguard's path
        f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard-PublicGuardRole-1A2B3C4D5E6",  # a prefix of the real name
        f"arn:aws:iam::{ACCOUNT}:role/amiguard-PublicGuardRole-1A2B3C4D5E6F",  # the real name, another path
        f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard/amiguard-PublicGuardRole-1A2B3C4D5E6F",
        "arn:aws:iam::999988887777:role/amiguard/amiguard-PublicGuardRole-1A2B3C4D5E6F",  # another account
        STACK_ROLE.upper(),
    ],
)
def test_call_is_not_own_when_its_issuer_only_looks_like_a_stack_role(issuer):
    assert not is_own_call(session_of(issuer), ORGANIZATION)


def test_call_is_not_own_when_a_user_or_root_has_no_session_issuer():
    user = UserIdentity.model_validate({"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/amiguard"})
    assert not is_own_call(user, ORGANIZATION)
    assert not is_own_call(None, ORGANIZATION)


def test_call_is_not_own_when_a_federated_session_names_a_stack_role():
    assert not is_own_call(session_of(STACK_ROLE, kind="FederatedUser"), STACK)


def test_member_role_call_is_own_when_organization_mode_and_source_identity_is_amiguard():
    assert is_own_call(session_of(MEMBER_ROLE, source_identity="amiguard"), ORGANIZATION)


@pytest.mark.parametrize("source_identity", [None, "", "Amiguard", "amiguard ", "alice"])
def test_member_role_call_is_not_own_when_source_identity_is_not_amiguard(source_identity):
    assert not is_own_call(session_of(MEMBER_ROLE, source_identity=source_identity), ORGANIZATION)


def test_member_role_call_is_not_own_when_the_stack_governs_one_account_only():
    assert not is_own_call(session_of(MEMBER_ROLE, source_identity="amiguard"), STACK)


def test_reader_role_call_is_not_own_when_it_made_a_change():
    reader = "arn:aws:iam::444455556666:role/amiguard/amiguard-reader"
    assert not is_own_call(session_of(reader, source_identity="amiguard"), ORGANIZATION)
