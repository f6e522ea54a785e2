"""Organization mode: the finding for an account amiguard cannot act in through its member role.

Raised by every function acting in a member (:func:`amiguard.observability.handle_event`) when AssumeRole into
the account's member role fails, or the account has not enabled the event's region. It comes with an error, so
Lambda retries the event (and its failure queue keeps it): the event is not lost, and the alert, de-duplicated
on account, role and cause, is sent once per window, not once per event.
"""

from __future__ import annotations

from datetime import datetime

from amiguard.models.findings import Action, Finding, FindingType, Severity

# What each cause means for the person reading the alert.
CAUSES = {
    "role-missing-or-refused": (
        "STS refused AssumeRole: the role is missing (the member StackSet did not reach the account), its trust "
        "policy does not admit this stack's function role, or the account is suspended or not in the organization"
    ),
    "region-not-enabled": "the account has not enabled this region (an opt-in region)",
    "sts-throttled": "STS throttled AssumeRole until the invocation's deadline",
}


def member_role_unavailable(
    *,
    account: str,
    role_arn: str,
    region: str,
    cause: str,
    code: str,
    function: str,
    event_id: str | None,
    event_time: datetime | None,
) -> Finding:
    """The ``member-role-unavailable`` finding (high): amiguard cannot act in ``account`` through ``role_arn``."""
    meaning = CAUSES.get(cause, cause)
    return Finding(
        type=FindingType.MEMBER_ROLE_UNAVAILABLE,
        severity=Severity.HIGH,
        summary=f"amiguard cannot act in account {account} ({region}) through {role_arn}: {meaning}",
        account=account,
        region=region,
        event_id=event_id,
        event_time=event_time,
        action=Action.NONE,
        # No error message here: it carries request ids, and the evidence is what de-duplicates the alert.
        evidence={"role": role_arn, "cause": cause, "error_code": code, "function": function},
    )
