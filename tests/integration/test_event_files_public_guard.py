"""The example events in events/public_guard/, replayed on the sandbox: each is acted on as documented."""

from __future__ import annotations

import json

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.replay import replay
from tests.samples import ROOT

EVENTS = ROOT / "events" / "public_guard"


@pytest.mark.parametrize(
    ("name", "findings"),
    [
        ("make-ami-public.json", ["public-share"]),
        ("share-ami-with-accounts.json", ["untrusted-share"]),
        ("share-ami-legacy-form.json", ["untrusted-share"]),
        ("make-snapshot-public.json", ["public-snapshot"]),
        ("disable-image-block-public-access.json", ["block-public-access-disabled"]),
        ("disable-snapshot-block-public-access.json", ["snapshot-block-public-access-disabled"]),
    ],
)
def test_example_event_is_remediated_when_replayed_in_enforce_mode(name, findings):
    result = replay(EVENTS / name, enforce=True, parameters={"TrustedPrincipals": "222233334444"})

    assert [alert.message["type"] for alert in result.alerts] == findings
    assert all(alert.message["action"] == "revoked" for alert in result.alerts)


def test_trusted_partner_and_its_organization_units_are_kept_when_shared_alongside_a_stranger():
    result = replay(
        EVENTS / "share-ami-with-accounts.json",
        enforce=True,
        parameters={"TrustedPrincipals": "222233334444,arn:aws:organizations::222233334444:organization/o-abcdefghij"},
    )

    [alert] = result.alerts
    assert alert.message["evidence"]["untrusted_principals"] == ["999988887777"]
    assert len(alert.message["evidence"]["kept"]) == 2


def test_sso_user_is_the_actor_when_the_caller_used_identity_center():
    result = replay(EVENTS / "make-ami-public.json")

    [alert] = result.alerts
    assert alert.message["actor"].endswith("AWSReservedSSO_Developer_0123456789abcdef/alice@example.com")


@pytest.mark.parametrize(
    ("name", "used_by", "severity", "trusted"),
    [
        ("shared-snapshot-volume-created.json", "999988887777", "high", False),
        ("shared-snapshot-copy-initiated.json", "222233334444", "low", True),
    ],
)
def test_another_account_using_a_shared_snapshot_is_alerted_naming_it_when_the_service_event_arrives(
    name, used_by, severity, trusted
):
    result = replay(EVENTS / name, enforce=True, parameters={"TrustedPrincipals": "222233334444"})

    [alert] = result.alerts
    assert alert.message["type"] == "shared-snapshot-used" and alert.message["severity"] == severity
    assert alert.message["snapshot_id"] == "snap-0abcdef1234567890" and alert.message["action"] == "none"
    assert alert.message["actor"] == used_by
    assert alert.message["evidence"] | {"backed_images": []} == {
        "used_by": used_by,
        "trusted": trusted,
        "event": alert.message["evidence"]["event"],
        "backed_images": [],
        "still_shared": True,
    }


def test_shared_snapshot_use_is_still_alerted_when_the_snapshot_was_deleted_since():
    with Sandbox(parameters={"Mode": "enforce"}) as sandbox:
        sandbox.put_event(json.loads((EVENTS / "shared-snapshot-volume-created.json").read_text()))

        sandbox.run()

        [alert] = sandbox.alerts()
    assert alert.message["evidence"]["still_shared"] is None
    assert alert.message["summary"].endswith("The snapshot no longer exists.")
