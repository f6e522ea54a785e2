"""Fuzz: no function crashes nor acts beyond what the seeded state calls for, whatever the event.

One harness for every function: one sandbox per function (a module-scoped fixture, its examples sharing the
account as Lambda invocations do), events mutated from every real-shaped one (its own weighted up), and the
mutating calls the seeded state allows it besides recording and alerting. A new function is one entry of ``MAY``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amiguard_cli.sandbox.account import Sandbox
from tests.fuzz.fuzzing import PARAMETERS, Seeded, assert_survived, base_events, mutated_events, seed, seeded_ids

# On the seeded state (tests.fuzz.fuzzing.seed), what each function may change, and why.
MAY: dict[str, frozenset[str]] = {
    # no AMI is approved and no replica exists: nothing to copy, tag or clean up
    "dr_replicator": frozenset(),
    # Slack is off and the notifier changes nothing in AWS
    "notifier": frozenset(),
    # image block public access is on and no AMI or snapshot is shared: nothing to revoke
    "public_guard": frozenset(),
    # the untagged AMI may be marked; nothing is public, approved or overdue
    "sweeper": frozenset({"ec2:CreateTags"}),
    # tags only: no violation is recorded past its grace period, so nothing escalates
    "tag_enforcer": frozenset({"ec2:CreateTags", "ec2:DeleteTags"}),
    # it only ever alerts
    "tamper_guard": frozenset(),
}


@dataclass(frozen=True)
class Fuzzed:
    """One function's sandbox, what was planted in it, and the events its examples are mutated from."""

    function: str
    sandbox: Sandbox
    seeded: Seeded
    bases: list[dict[str, Any]]


@pytest.fixture(scope="module", params=sorted(MAY))
def fuzzed(request: pytest.FixtureRequest) -> Iterator[Fuzzed]:
    function = str(request.param)
    with Sandbox(parameters=PARAMETERS) as sb:
        yield Fuzzed(function, sb, seed(sb), base_events(function))


@given(data=st.data())
def test_function_neither_crashes_nor_overreaches_when_an_event_is_mutated(fuzzed: Fuzzed, data: st.DataObject) -> None:
    # Given a mutated event
    event = data.draw(mutated_events(fuzzed.bases, seeded_ids(fuzzed.seeded)), label="event")

    # When the function receives it, as deployed
    delivery = fuzzed.sandbox.invoke(fuzzed.function, event)

    # Then it did not crash, and changed nothing the state does not call for
    assert_survived(delivery, MAY[fuzzed.function])
