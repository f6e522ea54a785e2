"""Organization mode, bad input: a member role that cannot be used is a member-role-unavailable finding (high,
once per account and cause) AND an error for Lambda to retry, never a silent drop; the credential cache assumes
each account's role once per session, not once per event (virtual clock)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.clock import VirtualClock
from amiguard_cli.sandbox.faults import Call, FaultKind
from tests.integration.test_org_member_roles import (
    OUTSIDE_STACK,
    PARAMETERS,
    assert_retried_and_kept,
    launch_permissions,
    make_public,
    member,
    member_image,
    of,
    unavailable_alerts,
)


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    with Sandbox(organization=True, parameters=PARAMETERS) as sb:
        yield sb


# --- a member role that cannot be used ---------------------------------------------------------------------


def test_member_role_unavailable_is_a_finding_and_an_error_when_the_role_is_missing(fresh: Sandbox) -> None:
    # Given dev's public-guard member role was never deployed (deleted here)
    dev = member(fresh, "dev")
    fresh.internal_client("iam", account=dev).delete_role(RoleName="amiguard-public-guard")
    image = member_image(fresh, dev, OUTSIDE_STACK)
    # When a dev AMI is made public
    make_public(fresh, dev, OUTSIDE_STACK, image)
    delivery = of(fresh.run(), "public_guard")[0]
    # Then: one high member-role-unavailable alert naming the account, and an error so Lambda retries
    assert_retried_and_kept(delivery)
    assert delivery in fresh.dead_letters
    alerts = unavailable_alerts(fresh)
    assert [(a["severity"], a["account"], a["account_name"], a["evidence"]["cause"]) for a in alerts] == [
        ("high", dev, "dev", "role-missing-or-refused")
    ]
    assert alerts[0]["evidence"]["role"] == f"arn:aws:iam::{dev}:role/amiguard/amiguard-public-guard"
    # And a second event of that account is an error again, but not a second alert (de-duplicated)
    other = member_image(fresh, dev, OUTSIDE_STACK)
    make_public(fresh, dev, OUTSIDE_STACK, other)
    assert_retried_and_kept(of(fresh.run(), "public_guard")[0])
    assert unavailable_alerts(fresh) == []


def test_member_role_unavailable_when_its_trust_policy_refuses_the_central_role(fresh: Sandbox) -> None:
    # Given prod's member role trusts someone else
    prod = member(fresh, "prod")
    fresh.internal_client("iam", account=prod).update_assume_role_policy(
        RoleName="amiguard-public-guard",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",'
        ' "Principal": {"AWS": "arn:aws:iam::999999999999:root"}}]}',
    )
    image = member_image(fresh, prod, "us-east-1")
    make_public(fresh, prod, "us-east-1", image)
    delivery = of(fresh.run(), "public_guard")[0]
    assert_retried_and_kept(delivery)
    assert [a["evidence"]["cause"] for a in unavailable_alerts(fresh)] == ["role-missing-or-refused"]
    assert launch_permissions(fresh, prod, "us-east-1", image) != []  # nothing could be done: the alert says so


def test_member_role_unavailable_when_the_account_is_suspended(fresh: Sandbox) -> None:
    assert fresh.org is not None
    prod = member(fresh, "prod")
    image = member_image(fresh, prod, "us-east-1")
    make_public(fresh, prod, "us-east-1", image)
    fresh.org.suspend(prod)  # closed after the event was sent
    delivery = of(fresh.run(), "public_guard")[0]
    assert_retried_and_kept(delivery)
    assert [a["account"] for a in unavailable_alerts(fresh)] == [prod]


def test_member_role_unavailable_when_the_member_has_not_enabled_the_region(fresh: Sandbox) -> None:
    assert fresh.org is not None
    prod = member(fresh, "prod")
    image = member_image(fresh, prod, OUTSIDE_STACK)
    make_public(fresh, prod, OUTSIDE_STACK, image)
    fresh.org.disable_region(prod, OUTSIDE_STACK)  # an opt-in region, disabled since
    delivery = of(fresh.run(), "public_guard")[0]
    assert_retried_and_kept(delivery)
    alerts = unavailable_alerts(fresh)
    assert [(a["region"], a["evidence"]["cause"]) for a in alerts] == [(OUTSIDE_STACK, "region-not-enabled")]


def test_throttled_sts_is_retried_within_the_deadline_then_a_finding_and_an_error() -> None:
    clock = VirtualClock()
    with Sandbox(organization=True, parameters=PARAMETERS, clock=clock) as sb, clock.installed():
        prod = member(sb, "prod")
        image = member_image(sb, prod, "us-east-1")
        faults = sb.inject_faults()
        faults.add(Call("public_guard", "sts", "AssumeRole"), FaultKind.THROTTLE, times=None)
        make_public(sb, prod, "us-east-1", image)
        delivery = of(sb.run(), "public_guard")[0]
        assert_retried_and_kept(delivery)
        assert delivery.timeouts == 0  # botocore gave up before Lambda's deadline
        throttled = [call for call, _ in faults.injected if call.operation == "AssumeRole"]
        assert len(throttled) > 3  # retried by botocore within each attempt
        assert [a["evidence"]["cause"] for a in unavailable_alerts(sb)] == ["sts-throttled"]
        # And once STS answers again, the redriven event is acted on
        faults.clear()
        redriven = sb.redrive("public_guard")
        assert redriven[0].error is None
        assert launch_permissions(sb, prod, "us-east-1", image) == []


# --- the credential cache ------------------------------------------------------------------------------------


def test_at_most_one_assume_role_per_account_per_hour_when_a_warm_function_handles_events_for_hours() -> None:
    # Given a warm public_guard and events from two members every 5 minutes for two hours (virtual time)
    clock = VirtualClock()
    hours = 2
    with Sandbox(organization=True, parameters=PARAMETERS, clock=clock) as sb, clock.installed():
        accounts = [member(sb, "prod"), member(sb, "dev")]
        images = {account: member_image(sb, account, "us-east-1") for account in accounts}
        assumed: dict[str, int] = dict.fromkeys(accounts, 0)
        for _ in range(hours * 12):
            for account in accounts:
                make_public(sb, account, "us-east-1", images[account])
                for delivery in of(sb.run(), "public_guard"):
                    assumed[account] += delivery.calls.count("sts:AssumeRole")
                    assert delivery.error is None
            clock.advance(300)
    # Then each account's role was assumed once per hour-long session (refreshed in its last 3 minutes), not once
    # per event (24 each), nor every 45 minutes (botocore's default 15-minute window: 3 in two hours)
    assert assumed == dict.fromkeys(accounts, hours)
