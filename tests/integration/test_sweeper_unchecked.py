"""sweeper: what it could not check is retried within the sweep, then named and raised, never reported clean.

Faults are injected in front of moto on the sweeper's own DescribeImageAttribute calls, on a virtual clock
(botocore's backoff costs no real time).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.clock import VirtualClock
from amiguard_cli.sandbox.estate import UNTRUSTED_ACCOUNT
from amiguard_cli.sandbox.faults import Call, FaultKind, Persistence

from .test_sweeper import SCHEDULED_EVENT, image, launch_permissions

CHECK = Call("sweeper", "ec2", "DescribeImageAttribute")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    clock = VirtualClock()
    with Sandbox(parameters={"Mode": "enforce", "RequiredTags": ""}, clock=clock) as sb, clock.installed():
        yield sb


def test_sweep_raises_and_names_the_ami_when_its_check_keeps_failing(sandbox: Sandbox) -> None:
    # Given an AMI shared with a stranger, whose launch permissions cannot be read (throttled, every attempt)
    shared = image(sandbox, {"UserId": UNTRUSTED_ACCOUNT})
    faults = sandbox.inject_faults()
    faults.add(CHECK, FaultKind.THROTTLE, times=None)
    sandbox.alerts()

    # When the sweep runs (Lambda's three attempts)
    delivery = sandbox.invoke("sweeper", SCHEDULED_EVENT)

    # Then it did not report success: it raised each time (never timed out), the event waits in the failure queue
    assert delivery.error is not None and delivery.error.startswith("SweepIncomplete:")
    assert f"us-east-1/{shared}" in delivery.error
    assert (delivery.attempts, delivery.timeouts) == (3, 0)
    assert sandbox.dead_letters == [delivery]
    # and each attempt's summary names what it could not check
    summaries = [alert.message for alert in sandbox.alerts() if alert.message["type"] == "sweep-summary"]
    assert len(summaries) == 3
    expected = f"us-east-1/{shared} (launch-permissions: RequestLimitExceeded)"
    assert all(s["evidence"]["unchecked"] == [expected] for s in summaries)
    assert all(s["evidence"]["complete"] is False for s in summaries)

    # When the cause is fixed and the failure queue is redriven
    faults.clear()
    [redriven] = sandbox.redrive("sweeper")

    # Then the share is revoked and alerted once
    assert redriven.error is None
    assert launch_permissions(sandbox, shared) == []
    assert [(a.message["type"], a.message["image_id"]) for a in sandbox.alerts()][:-1] == [
        ("untrusted-share", shared)
    ]


def test_sweep_succeeds_within_one_attempt_when_a_check_fails_only_for_one_pass(sandbox: Sandbox) -> None:
    # Given an AMI shared with a stranger whose check fails for all of botocore's attempts of one call
    shared = image(sandbox, {"UserId": UNTRUSTED_ACCOUNT})
    faults = sandbox.inject_faults()
    faults.add(CHECK, FaultKind.SERVER_ERROR, times=Persistence.EXHAUSTING.times)
    sandbox.alerts()

    # When
    delivery = sandbox.invoke("sweeper", SCHEDULED_EVENT)

    # Then the second pass within the sweep checked and revoked it
    assert delivery.error is None and delivery.attempts == 1
    assert launch_permissions(sandbox, shared) == []
    alerts = sandbox.alerts()
    assert [(a.message["type"], a.message["action"]) for a in alerts] == [
        ("untrusted-share", "revoked"),
        ("sweep-summary", "none"),
    ]
    assert alerts[-1].message["evidence"]["complete"] is True
