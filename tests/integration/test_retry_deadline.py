"""Retries fit the deadline: a throttling storm ends in a raise Lambda retries, never in a killed attempt.

botocore's adaptive retries (9 attempts, backoff up to 20 s) take over a minute against a persistent throttle;
the functions' clients stop retrying while one more attempt still fits before the Lambda deadline. Faults are
injected in front of moto on a virtual clock, so the storm costs no real time.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from amiguard.aws.clients import TIMEOUTS, ClientFactory
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.clock import VirtualClock
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user
from amiguard_cli.sandbox.faults import Call, FaultKind

from ..conftest import bake_image


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    clock = VirtualClock()
    with Sandbox(parameters={"Mode": "enforce"}, clock=clock) as sb, clock.installed():
        yield sb


def _make_public(sb: Sandbox) -> str:
    image_id: str = bake_image(sb)["ImageId"]
    with acting_as(iam_user("dev-bob")):
        sb.client("ec2").modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    return image_id


@pytest.mark.parametrize(
    ("operation", "kind"),
    [
        ("DescribeImages", FaultKind.READ_TIMEOUT),  # 9 attempts x 15 s read timeout: 135 s, past the 60 s
        ("ModifyImageAttribute", FaultKind.THROTTLE),  # 9 attempts, backoff up to 20 s each
        ("ModifyImageAttribute", FaultKind.CONNECT_TIMEOUT),
    ],
)
def test_each_attempt_raises_before_its_deadline_when_a_call_keeps_failing(
    sandbox: Sandbox, operation: str, kind: FaultKind
) -> None:
    # Given one of public_guard's calls fails every time
    _make_public(sandbox)
    sandbox.inject_faults().add(Call("public_guard", "ec2", operation), kind, times=None)

    # When EventBridge delivers the event (Lambda: three attempts of at most 60 s)
    [guard] = [d for d in sandbox.run() if d.function == "public_guard"]

    # Then every attempt ended in the client's own error, raised in time: none was stopped by Lambda
    assert (guard.attempts, guard.timeouts) == (3, 0)
    assert guard.error is not None and "Task timed out" not in guard.error
    assert sandbox.dead_letters == [guard]


def test_clients_take_their_services_timeouts_when_made_by_the_factory() -> None:
    clients = ClientFactory(boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"))

    configs = {service: clients.client(service, "us-east-1").meta.config for service in TIMEOUTS}

    assert {s: (c.connect_timeout, c.read_timeout) for s, c in configs.items()} == {
        s: (t.connect, t.read) for s, t in TIMEOUTS.items()
    }
    assert all(c.retries["mode"] == "adaptive" for c in configs.values())
