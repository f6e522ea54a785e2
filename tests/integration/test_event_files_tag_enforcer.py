"""The example events in events/tag_enforcer/, replayed on the sandbox: each is acted on as documented."""

from __future__ import annotations

import pytest

from amiguard_cli.sandbox.replay import replay
from tests.samples import ROOT

EVENTS = ROOT / "events" / "tag_enforcer"
ALICE = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Developer_0123456789abcdef"


def tag_enforcer_results(result):
    return [
        d.result
        for d in result.deliveries
        if d.function == "tag_enforcer" and d.result and d.result["reason"] != "amiguard-own-action"
    ]


@pytest.mark.parametrize(
    ("name", "seeded", "alerts"),
    [
        ("create-image-untagged.json", ["ami-0fedcba9876543210"], ["missing-tags"]),
        ("create-image-tagged.json", ["ami-0fedcba9876543211"], []),
        ("copy-image-cross-region.json", ["ami-0123456789abcdef1", "ami-0fedcba9876543212"], ["missing-tags"]),
        ("register-image.json", ["ami-0fedcba9876543213"], ["missing-tags"]),
        ("create-tags-mixed-resources.json", ["ami-0fedcba9876543210"], []),
        ("delete-tags-required.json", ["ami-0fedcba9876543210"], ["missing-tags"]),
        ("ami-available.json", ["ami-0fedcba9876543210"], []),
    ],
)
def test_example_event_is_acted_on_when_replayed_in_enforce_mode(name, seeded, alerts):
    result = replay(EVENTS / name, enforce=True)

    assert result.seeded == seeded
    assert [alert.message["type"] for alert in result.alerts] == alerts
    assert all(alert.message["actor"] == f"{ALICE}/alice@example.com" for alert in result.alerts)
    assert not result.deliveries or all(d.error is None for d in result.deliveries)
    [outcome] = tag_enforcer_results(result)
    assert outcome["status"] == ("acted" if alerts else "clean"), outcome


def test_example_event_changes_nothing_when_replayed_in_audit_mode():
    result = replay(EVENTS / "create-image-untagged.json")

    [alert] = result.alerts
    assert alert.message["action"] == "would-tag"
    assert [d for d in result.deliveries if d.result and d.result["reason"] == "amiguard-own-action"] == []
