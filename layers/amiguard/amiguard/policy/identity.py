"""Recognising amiguard's own API calls in CloudTrail, so that they trigger nothing (no loops).

Applies to every CloudTrail-triggered function, through :func:`amiguard.policy.screening.screen_cloudtrail`.
A call is amiguard's own only when its session issuer is exactly one of the stack's own roles (their ARNs
come from the template, ``AMIGUARD_OWN_ROLE_ARNS``) or, in organization mode, one of the member roles
``arn:<partition>:iam::<account>:role/amiguard/amiguard-<function>`` with ``sourceIdentity`` ``amiguard``
(which the central functions set when they assume it, and which a session cannot change afterwards).
An IAM path or a name that looks like amiguard's is never enough: anyone who may create a role chooses
both, and a call wrongly taken for amiguard's own is one amiguard never looks at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from amiguard.models.events import UserIdentity

SOURCE_IDENTITY = "amiguard"
# The acting member roles (docs/organization.md). amiguard-reader only reads: its calls change nothing.
MEMBER_ROLE = re.compile(
    r"^arn:aws[a-z-]*:iam::\d{12}:role/amiguard/amiguard-(?:public-guard|tag-enforcer|dr-replicator|sweeper)$"
)


@dataclass(frozen=True)
class OwnRoles:
    """Whose calls are amiguard's: the stack's roles by exact ARN, and (organization mode) the member roles."""

    stack_roles: frozenset[str]
    member_roles: bool = False

    @classmethod
    def of(cls, stack_roles: Iterable[str], *, organization: bool = False) -> OwnRoles:
        return cls(frozenset(stack_roles), member_roles=organization)

    @property
    def stack_accounts(self) -> frozenset[str]:
        """The account the stack runs in (its roles'): the only one whose events reach it outside organization mode."""
        return frozenset(arn.split(":")[4] for arn in self.stack_roles)


def is_own_call(identity: UserIdentity | None, own: OwnRoles) -> bool:
    """True only for a session of one of amiguard's own roles (see the module docstring)."""
    if identity is None or identity.type != "AssumedRole":
        return False
    issuer = identity.issuer_arn
    if not issuer:
        return False
    if issuer in own.stack_roles:
        return True
    return own.member_roles and bool(MEMBER_ROLE.match(issuer)) and identity.source_identity == SOURCE_IDENTITY
