"""Every ModifyImageAttribute / ModifySnapshotAttribute sample, replayed through template.yaml's rules and
the real handler: verbatim (the outcome a recording deserves), and with anonymised ids made real."""

from __future__ import annotations

import json

import pytest

from amiguard_cli.sandbox.replay import replay
from tests.samples import load_sample, sample_path


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cloudtrail-raw-modifyimageattribute-add-group-all-panther.json", "malformed-event"),  # ami-1111
        (
            "cloudtrail-raw-modifyimageattribute-add-userid-console-cloudconcerns.json",
            "malformed-event",
        ),  # ami-XXXXXXXX
        ("cloudtrail-raw-modifyimageattribute-add-userid-stratus.json", "malformed-event"),  # region me-south-1r
        ("cloudtrail-raw-modifyimageattribute-remove-group-all-elastic.json", "malformed-event"),  # account 000000000
        ("cloudtrail-raw-modifysnapshotattribute-add-userid-stratus.json", "malformed-event"),
        ("cloudtrail-raw-modifysnapshotattribute-remove-group-all-elastic.json", "malformed-event"),
        ("eventbridge-modifyimageattribute-remove-group-all-console-cloudbuddy.json", "removal"),
    ],
)
def test_sample_is_dropped_with_its_reason_when_replayed_verbatim(name, reason):
    result = replay(sample_path(name), enforce=True)

    [delivery] = result.deliveries
    assert delivery.error is None
    assert delivery.result["status"] == "dropped" and delivery.result["reason"] == reason
    assert result.alerts == []


def test_failed_call_sample_matches_no_rule_when_replayed():
    result = replay(sample_path("cloudtrail-raw-modifyimageattribute-add-group-all-error-panther.json"), enforce=True)

    assert result.deliveries == []  # errorCode exists: the rule's {"exists": false} keeps it out


def test_root_console_public_share_is_revoked_when_replayed_in_enforce_mode():
    result = replay(sample_path("eventbridge-modifyimageattribute-add-group-all-console-cloudbuddy.json"), enforce=True)

    assert result.seeded == ["ami-02b466201cbf1b617"]
    [alert] = result.alerts
    assert alert.message["type"] == "public-share" and alert.message["action"] == "revoked"
    assert alert.message["actor"] == "arn:aws:iam::012345678901:root"
    assert alert.message["account"] == "012345678901"


def test_root_console_public_share_would_be_revoked_when_replayed_in_audit_mode():
    result = replay(sample_path("eventbridge-modifyimageattribute-add-group-all-console-cloudbuddy.json"))

    [alert] = result.alerts
    assert alert.message["action"] == "would-revoke"


@pytest.mark.parametrize(
    ("name", "substitutions", "finding"),
    [
        (
            "cloudtrail-raw-modifyimageattribute-add-group-all-panther.json",
            {"ami-1111": "ami-0a1b2c3d4e5f60718"},
            "public-share",
        ),
        (
            "cloudtrail-raw-modifyimageattribute-add-userid-console-cloudconcerns.json",
            {"ami-XXXXXXXX": "ami-0a1b2c3d4e5f60718"},
            "untrusted-share",
        ),
        (
            "cloudtrail-raw-modifyimageattribute-add-userid-stratus.json",
            {"me-south-1r": "me-south-1", "ami-de1fbCab6ccB03e6D": "ami-0de1fbcab6ccb03e6"},
            "untrusted-share",
        ),
        (
            "cloudtrail-raw-modifysnapshotattribute-add-userid-stratus.json",
            {"me-central-3r": "me-central-1"},
            "untrusted-share",
        ),
    ],
)
def test_sample_is_remediated_when_its_anonymised_ids_are_made_real(tmp_path, name, substitutions, finding):
    text = json.dumps(load_sample(name))
    for old, new in substitutions.items():
        text = text.replace(old, new)
    event_file = tmp_path / name
    event_file.write_text(text)

    result = replay(event_file, enforce=True)

    assert [alert.message["type"] for alert in result.alerts] == [finding]
    assert all(alert.message["action"] == "revoked" for alert in result.alerts)
