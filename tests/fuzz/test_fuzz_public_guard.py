"""Fuzz: ``public_guard`` never crashes nor acts beyond what the state calls for, whatever the event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amiguard_cli.sandbox.account import Sandbox
from tests.fuzz.fuzzing import PARAMETERS, Seeded, assert_survived, base_events, mutated_events, seed, seeded_ids

FUNCTION = "public_guard"
BASES = base_events(FUNCTION)
# On the seeded state, image block public access is on and no AMI or snapshot is shared: nothing to revoke.
MAY = frozenset()


@pytest.fixture(scope="module")
def account() -> Iterator[tuple[Sandbox, Seeded]]:
    with Sandbox(parameters=PARAMETERS) as sb:
        yield sb, seed(sb)


@given(data=st.data())
def test_public_guard_neither_crashes_nor_overreaches_when_an_event_is_mutated(
    account: tuple[Sandbox, Seeded], data: st.DataObject
) -> None:
    sb, seeded = account
    event = data.draw(mutated_events(BASES, seeded_ids(seeded)), label="event")

    delivery = sb.invoke(FUNCTION, event)

    assert_survived(delivery, MAY)
