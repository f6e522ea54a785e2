"""Fuzz: ``tag_enforcer`` never crashes nor acts beyond what the state calls for, whatever the event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amiguard_cli.sandbox.account import Sandbox
from tests.fuzz.fuzzing import PARAMETERS, Seeded, assert_survived, base_events, mutated_events, seed, seeded_ids

FUNCTION = "tag_enforcer"
BASES = base_events(FUNCTION)
# On the seeded state, tags only: no violation is recorded past its grace period, so nothing escalates.
MAY = frozenset({"ec2:CreateTags", "ec2:DeleteTags"})


@pytest.fixture(scope="module")
def account() -> Iterator[tuple[Sandbox, Seeded]]:
    with Sandbox(parameters=PARAMETERS) as sb:
        yield sb, seed(sb)


@given(data=st.data())
def test_tag_enforcer_neither_crashes_nor_overreaches_when_an_event_is_mutated(
    account: tuple[Sandbox, Seeded], data: st.DataObject
) -> None:
    sb, seeded = account
    event = data.draw(mutated_events(BASES, seeded_ids(seeded)), label="event")

    delivery = sb.invoke(FUNCTION, event)

    assert_survived(delivery, MAY)
