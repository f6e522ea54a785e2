"""``amiguard backtest`` knows every event the event path knows: each event a function's rule in template.yaml
routes (derived from the template, so the next rule cannot be forgotten), every recorded sample and every file of
events/, and what it decides for the newer ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amiguard.models.events import AMI_STATE_CHANGE_DETAIL_TYPE, CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE
from amiguard.models.settings import load_settings
from amiguard_cli.backtest.command import routed_event_names
from amiguard_cli.backtest.decide import NOT_IN_BACKTEST, Backtest
from amiguard_cli.history import read_files
from amiguard_cli.sandbox.cfn import Route, Router, event_routes, load_template
from tests.integration.test_backtest import ACCOUNT, IMAGE, STRANGER, backtest, create_tags, record, trail
from tests.samples import ROOT, SAMPLES

ROUTES = event_routes(load_template(ROOT / "template.yaml"))
SNAPSHOT = "snap-0abcdef1234567890"
FORWARDERS = [ROOT / "org" / "member-forwarder.yaml", ROOT / "region-forwarder.yaml"]


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads the user's AMIGUARD_* variables, as the stack's would be: start from none."""
    for key in [key for key in __import__("os").environ if key.startswith("AMIGUARD_")]:
        monkeypatch.delenv(key)


def _names(pattern: dict[str, Any]) -> Iterator[str]:
    for name in (pattern.get("detail") or {}).get("eventName") or []:
        yield name if isinstance(name, str) else f"{name['prefix']}20150331"  # Lambda's versioned API names


def routed_items(route: Route) -> Iterator[dict[str, Any]]:
    """One history item (a bare CloudTrail record, or an event no record holds) per thing ``route`` matches."""
    pattern, detail = route.pattern, route.pattern.get("detail") or {}
    for detail_type in pattern["detail-type"]:
        if detail_type == AMI_STATE_CHANGE_DETAIL_TYPE:
            for state in detail.get("State") or ["available"]:
                yield {
                    "version": "0",
                    "id": f"state-{state}",
                    "detail-type": detail_type,
                    "source": "aws.ec2",
                    "account": ACCOUNT,
                    "time": "2026-11-01T10:00:00Z",
                    "region": "us-east-1",
                    "resources": [f"arn:aws:ec2:us-east-1::image/{IMAGE}"],
                    "detail": {"ImageId": IMAGE, "State": state},
                }
            continue
        service = detail_type == CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE
        for source in detail["eventSource"]:
            for name in _names(pattern):
                yield record(
                    name,
                    {},
                    eventSource=source,
                    eventType="AwsServiceEvent" if service else "AwsApiCall",
                    serviceEventDetails={"snapshotId": SNAPSHOT} if service else None,
                )


@pytest.mark.parametrize("route", ROUTES, ids=[route.rule for route in ROUTES])
def test_every_event_a_rule_routes_is_understood_by_the_backtest_when_derived_from_the_template(route: Route) -> None:
    # Given every event this rule of template.yaml matches (checked against the rule, as EventBridge would)
    from amiguard_cli.history import as_event

    items = list(routed_items(route))
    assert items
    backtest_run = Backtest(load_settings(), ROUTES)
    for item in items:
        assert route.function in Router([route]).functions(as_event(item)), item

        # When the backtest reads it
        result = Backtest(load_settings(), ROUTES).run([item])

        # Then it has a decision for what the function does with it
        assert backtest_run.understands(route.function, as_event(item)), (route.rule, item.get("eventName"))
        assert NOT_IN_BACKTEST not in result.skipped, (route.rule, item.get("eventName"), result.skipped)


@pytest.mark.parametrize("forwarder", FORWARDERS, ids=[path.name for path in FORWARDERS])
def test_forwarded_event_names_are_routed_by_the_template_when_the_backtest_follows_its_rules(forwarder: Path) -> None:
    # Given the CloudTrail event names a forwarder template sends on to the stack's bus
    forwarded: set[str] = set()
    for resource in load_template(forwarder)["Resources"].values():
        if resource["Type"] == "AWS::Events::Rule":
            forwarded.update(_names(resource["Properties"]["EventPattern"]))
    # When / Then: the stack's own rules (which the backtest routes by) match every one of them
    assert forwarded and forwarded <= set(routed_event_names(ROUTES))


def test_every_recorded_sample_and_event_file_is_read_and_understood_when_backtested() -> None:
    # Given every recorded sample and every real-shaped event under events/ (the notifier's is an SNS delivery of
    # an alert, not an event on the bus)
    folders = sorted(path for path in (ROOT / "events").iterdir() if path.is_dir() and path.name != "notifier")
    history = read_files([SAMPLES, *folders])
    files = sum(len(list(folder.glob("*.json"))) for folder in [SAMPLES, *folders])

    # When
    result = Backtest(load_settings(), ROUTES).run(history.records)

    # Then each file gives one item, and none is one the backtest has no decision for
    assert not history.errors and not history.skipped
    assert len(history.records) == files
    assert NOT_IN_BACKTEST not in result.skipped


def test_disabled_snapshot_block_public_access_would_be_turned_back_on_when_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given
    path = trail(tmp_path, record("DisableSnapshotBlockPublicAccess", {}, response={"state": "unblocked"}))
    # When
    code, report = backtest(capsys, "--file", str(path))
    # Then
    [decision] = report["decisions"]
    assert (decision["finding"], decision["action"], decision["function"]) == (
        "snapshot-block-public-access-disabled",
        "revoked",
        "public_guard",
    )
    assert decision["resource"] == "snapshot-block-public-access/us-east-1" and code == 1


@pytest.mark.parametrize(("trusted", "severity"), [("", "high"), (STRANGER, "low")], ids=["untrusted", "trusted"])
def test_shared_snapshot_use_names_the_other_account_when_the_trail_records_the_service_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trusted: str, severity: str
) -> None:
    # Given the service event CloudTrail records when another account creates a volume from a shared snapshot
    used = record(
        "SharedSnapshotVolumeCreated",
        {},
        userIdentity={"type": "AWSAccount", "accountId": STRANGER, "invokedBy": "ec2.amazonaws.com"},
        eventType="AwsServiceEvent",
        serviceEventDetails={"snapshotId": SNAPSHOT},
        response=None,
    )
    path = trail(tmp_path, used)
    # When
    code, report = backtest(capsys, "--file", str(path), "--trusted-principals", trusted)
    # Then: an alert naming who used it, nothing to undo
    [decision] = report["decisions"]
    assert (decision["finding"], decision["severity"], decision["action"]) == ("shared-snapshot-used", severity, "none")
    assert (decision["resource"], decision["actor"]) == (SNAPSHOT, STRANGER)
    assert code == 1


@pytest.mark.parametrize(
    ("params", "legacy"),
    [
        ({"name": "pv", "virtualizationType": "paravirtual", "rootDeviceName": "/dev/sda1"}, True),
        ({"name": "s3", "imageLocation": "bucket/image.manifest.xml", "virtualizationType": "hvm"}, True),
        (
            {
                "name": "ebs",
                "virtualizationType": "hvm",
                "rootDeviceName": "/dev/xvda",
                "blockDeviceMapping": {"items": [{"deviceName": "/dev/xvda", "ebs": {"snapshotId": SNAPSHOT}}]},
            },
            False,
        ),
    ],
    ids=["paravirtual", "instance-store", "hvm-ebs"],
)
def test_registered_legacy_platform_ami_is_reported_when_the_register_call_asks_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], params: dict[str, Any], legacy: bool
) -> None:
    # Given a RegisterImage (tagged as the rules want, so only the platform is in question)
    params = params | {"tagSpecificationSet": {"items": [{"resourceType": "image", "tags": []}]}}
    path = trail(tmp_path, record("RegisterImage", params, response={"imageId": IMAGE}))
    # When
    _, report = backtest(capsys, "--file", str(path), "--required-tags", "")
    # Then: legacy platforms are reported (low, nothing to undo); encryption is left to DescribeImages, and said so
    found = [(d["finding"], d["severity"], d["action"]) for d in report["decisions"]]
    assert found == ([("ami-legacy-platform", "low", "none")] if legacy else [])
    assert report["summary"]["skipped"]["needs-describe-images"] == 1


def test_ami_state_change_is_counted_as_needing_current_state_when_a_file_holds_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an "EC2 AMI State Change" as EventBridge delivered it (no CloudTrail record holds it)
    event = json.loads((ROOT / "events" / "dr_replicator" / "replica-available-in-dr-region.json").read_text())
    path = tmp_path / "state.json"
    path.write_text(json.dumps(event))
    # When
    code, report = backtest(capsys, "--file", str(path))
    # Then: read and routed to both functions, each saying what only current state or the ledger can tell
    assert report["decisions"] == [] and code == 0
    assert report["summary"]["skipped"] == {"needs-current-state": 2}


@pytest.mark.parametrize(("mode", "action"), [("enforce", "deprecated"), ("audit", "none")])
def test_deregistered_source_would_have_its_copies_cleaned_up_when_the_history_copied_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, mode: str, action: str
) -> None:
    # Given an approved AMI the history copied to the DR region, then deregistered
    monkeypatch.setenv("AMIGUARD_DR_REGIONS", "us-west-2")
    monkeypatch.setenv("AMIGUARD_MODE", mode)
    approve = create_tags(IMAGE, ("amiguard:approved", "true"))
    deregister = record("DeregisterImage", {"imageId": IMAGE}, time="2026-11-02T10:00:00Z")
    path = trail(tmp_path, approve, deregister)
    # When
    _, report = backtest(capsys, "--file", str(path))
    # Then: ReplicaCleanup (deprecate by default) on the copy, as dr_replicator would
    cleanup = [d for d in report["decisions"] if d["finding"] == "replica-cleanup"]
    assert [(d["resource"], d["action"]) for d in cleanup] == [(IMAGE, action)]


def test_deregistered_ami_the_history_never_copied_yields_nothing_when_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMIGUARD_DR_REGIONS", "us-west-2")
    path = trail(tmp_path, record("DeregisterImage", {"imageId": IMAGE}))

    code, report = backtest(capsys, "--file", str(path))

    assert report["decisions"] == [] and code == 0
    assert report["summary"]["skipped"]["no-copies-in-history"] == 1


def test_tampering_with_the_stacks_rule_is_critical_when_the_history_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the stack's settings name its rules, and someone disabled one of them
    event = json.loads((ROOT / "events" / "tamper_guard" / "disable-sweeper-rule.json").read_text())
    monkeypatch.setenv("AMIGUARD_OWN_RULES", event["detail"]["requestParameters"]["name"])
    path = tmp_path / "tamper.json"
    path.write_text(json.dumps(event))
    # When
    code, report = backtest(capsys, "--file", str(path))
    # Then: tamper_guard's own decision
    [decision] = report["decisions"]
    assert (decision["finding"], decision["severity"], decision["function"]) == (
        "amiguard-tampered",
        "critical",
        "tamper_guard",
    )
    assert code == 1


def test_lookup_asks_for_the_service_events_and_snapshot_block_public_access_when_reading_cloudtrail() -> None:
    # Given / When: the names LookupEvents is asked for, from the template's rules
    names = set(routed_event_names(ROUTES))
    # Then: the service events (also management events in CloudTrail's event history) are among them
    assert {"SharedSnapshotVolumeCreated", "SharedSnapshotCopyInitiated", "DisableSnapshotBlockPublicAccess"} <= names
