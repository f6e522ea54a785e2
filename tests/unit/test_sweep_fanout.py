"""Organization-mode sweeps, pure parts: the account message, its continuation, and the forwarding gap check."""

from __future__ import annotations

import json

import pytest

from amiguard.policy.coverage import FORWARDING_RULES, RuleState, forwarding_gaps
from amiguard.services.sweep_fanout import MAX_CONTINUATIONS, AccountSweep
from amiguard.services.sweeper import unfinished_regions

ACCOUNT = "111122223333"


def test_message_round_trips_when_sent_and_parsed() -> None:
    sweep = AccountSweep(ACCOUNT, "prod", "tick", "2026-12-01T06:00:00Z", ("eu-west-1",), 1)
    assert AccountSweep.parse(sweep.body()) == sweep


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        (json.dumps({"account": "12345"}), "not a 12-digit account id"),
        (json.dumps({"account": ACCOUNT, "regions": ["mars-1"]}), "not region names"),
        (json.dumps({"account": ACCOUNT, "continuation": -1}), "not a count"),
    ],
)
def test_bad_message_is_refused_with_its_reason_when_parsed(body: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        AccountSweep.parse(body)


def test_continuation_names_only_the_regions_the_deadline_stopped_when_the_sweep_progressed() -> None:
    # Given a sweep of every region that the deadline stopped in two of them
    unfinished = unfinished_regions(
        [("eu-west-1", "DeadlineNear"), ("us-east-1", "Throttling"), ("ap-south-1", "DeadlineNear")]
    )
    # When / Then
    assert AccountSweep(ACCOUNT).continued(unfinished) == AccountSweep(
        ACCOUNT, regions=("ap-south-1", "eu-west-1"), continuation=1
    )


def test_no_continuation_is_made_when_it_would_not_progress() -> None:
    again = AccountSweep(ACCOUNT, regions=("eu-west-1",), continuation=1)
    assert again.continued(["eu-west-1"]) is None  # the same region stopped again: it never fits
    assert AccountSweep(ACCOUNT, continuation=MAX_CONTINUATIONS).continued(["eu-west-1"]) is None
    assert AccountSweep(ACCOUNT).continued([]) is None


def test_missing_and_disabled_forwarding_rules_are_gaps_when_the_region_holds_amis() -> None:
    rules = {FORWARDING_RULES[0]: RuleState(exists=False), FORWARDING_RULES[1]: RuleState(exists=True, enabled=False)}
    gaps = forwarding_gaps("eu-west-1", 3, rules)
    assert [(gap.resource, gap.blind) for gap in gaps] == [(FORWARDING_RULES[0], False), (FORWARDING_RULES[1], False)]
    assert "missing in eu-west-1, which holds 3 AMI(s)" in gaps[0].problem and "disabled" in gaps[1].problem


def test_no_gap_is_reported_when_the_region_holds_no_ami_or_forwards_its_events() -> None:
    enabled = {name: RuleState(exists=True, enabled=True, targets=1) for name in FORWARDING_RULES}
    assert forwarding_gaps("eu-west-1", 0, {name: RuleState(exists=False) for name in FORWARDING_RULES}) == []
    assert forwarding_gaps("eu-west-1", 5, enabled) == []
