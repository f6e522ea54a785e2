"""AMI hygiene policy: what DescribeImages says an AMI is made of, how old and how used it is (docs/checks.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from amiguard.models.images import Image
from amiguard.models.settings import Settings
from amiguard.policy.checks import (
    CheckContext,
    DeprecateIdleImage,
    ImageHygieneCheck,
    ImageLifecycleCheck,
    RegionFacts,
    RemedyRefused,
)
from amiguard.policy.hygiene import (
    SHARED_SNAPSHOT_EVENTS,
    idle_findings,
    legacy_platform_verdict,
    shared_snapshot_used_verdict,
    unencrypted_verdict,
)
from amiguard.policy.screening import Drop, read_snapshot_use
from tests.samples import ROOT

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"


def described(*volumes: dict, **fields) -> dict:
    """A DescribeImages item as EC2 returns it, with these EBS volumes (``Encrypted`` as given)."""
    mappings = [
        {"DeviceName": f"/dev/xvd{chr(97 + index)}", "Ebs": {"SnapshotId": f"snap-0{index:016x}", "VolumeSize": 8} | v}
        for index, v in enumerate(volumes)
    ]
    return {
        "ImageId": "ami-0123456789abcdef0",
        "OwnerId": ACCOUNT,
        "State": "available",
        "BlockDeviceMappings": mappings,
        "VirtualizationType": "hvm",
        "RootDeviceType": "ebs",
        "CreationDate": "2026-11-01T00:00:00.000Z",
        **fields,
    }


def test_image_is_encrypted_only_when_every_ebs_volume_is_encrypted():
    image = Image.from_api(described({"Encrypted": True}, {"Encrypted": False}), "us-east-1")

    assert image.encrypted is False
    assert image.any_encrypted is True
    assert image.unencrypted_snapshots == ("snap-00000000000000001",)


def test_image_is_encrypted_when_all_its_volumes_are_and_the_ephemeral_mapping_is_ignored():
    item = described({"Encrypted": True}, {"Encrypted": True})
    item["BlockDeviceMappings"].append({"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"})

    image = Image.from_api(item, "us-east-1")

    assert image.encrypted is True and image.unencrypted_snapshots == ()


def test_unencrypted_ami_names_each_unencrypted_snapshot_when_one_volume_is_not_encrypted():
    image = Image.from_api(described({"Encrypted": True}, {"Encrypted": False}), "us-east-1")

    verdict = unencrypted_verdict(image)

    assert verdict is not None and verdict.type == "unencrypted-ami" and verdict.severity == "medium"
    assert verdict.evidence["unencrypted_snapshots"] == ["snap-00000000000000001"]


def test_no_unencrypted_finding_when_ec2_reports_no_encryption_state():
    image = Image.from_api(described({}), "us-east-1")

    assert unencrypted_verdict(image) is None


@pytest.mark.parametrize(
    ("fields", "legacy"),
    [
        ({"VirtualizationType": "paravirtual"}, True),
        ({"RootDeviceType": "instance-store", "BlockDeviceMappings": []}, True),
        ({}, False),
    ],
)
def test_legacy_platform_is_reported_when_paravirtual_or_instance_store(fields, legacy):
    image = Image.from_api(described({"Encrypted": True}, **fields), "us-east-1")

    verdict = legacy_platform_verdict(image)

    assert (verdict is not None) is legacy
    if verdict:
        assert verdict.type == "ami-legacy-platform" and verdict.severity == "low"


def test_stale_and_unused_are_off_when_the_thresholds_are_zero():
    image = Image.from_api(described({"Encrypted": True}, CreationDate="2016-01-01T00:00:00.000Z"), "us-east-1")

    assert idle_findings(image, Settings(), NOW) == []


def test_old_ami_is_stale_unless_it_has_a_deprecation_time():
    settings = Settings(max_image_age_days=20)
    fresh = Image.from_api(described({"Encrypted": True}), "us-east-1")
    deprecated = Image.from_api(described({"Encrypted": True}, DeprecationTime="2027-01-01T00:00:00.000Z"), "x")

    [idle] = idle_findings(fresh, settings, NOW)

    assert idle.type == "ami-stale" and idle.days == 30
    assert idle_findings(deprecated, settings, NOW) == []
    assert idle_findings(fresh, Settings(max_image_age_days=31), NOW) == []


def test_unused_counts_from_last_launch_or_from_creation_when_never_launched():
    settings = Settings(unused_image_days=10)
    launched = Image.from_api(described({"Encrypted": True}, LastLaunchedTime="2026-11-28T00:00:00Z"), "x")
    never = Image.from_api(described({"Encrypted": True}), "x")

    assert idle_findings(launched, settings, NOW) == []
    [idle] = idle_findings(never, settings, NOW)
    assert idle.type == "ami-unused" and idle.days == 30


def context(settings: Settings) -> CheckContext:
    return CheckContext(settings=settings, account=ACCOUNT, fix=True, now=NOW)


def test_stale_ami_that_instances_use_gets_no_remedy_when_deprecation_is_on():
    settings = Settings(max_image_age_days=20, stale_image_action="deprecate")
    image = Image.from_api(described({"Encrypted": True}), "us-east-1")
    in_use = RegionFacts("us-east-1", [image], images_in_use={image.image_id: 2})
    idle = RegionFacts("us-east-1", [image], images_in_use={})

    [used] = ImageLifecycleCheck().evaluate(in_use, context(settings))
    [unused] = ImageLifecycleCheck().evaluate(idle, context(settings))

    assert used.remedy is None and used.verdict.evidence["instances_in_use"] == 2
    assert unused.remedy is not None and unused.remedy.done == "deprecated"


def test_stale_ami_is_reported_without_remedy_when_the_action_is_none():
    image = Image.from_api(described({"Encrypted": True}), "us-east-1")
    facts = RegionFacts("us-east-1", [image], images_in_use={})

    [problem] = ImageLifecycleCheck().evaluate(facts, context(Settings(max_image_age_days=20)))

    assert problem.verdict.type == "ami-stale" and problem.remedy is None


def test_hygiene_check_reports_unencrypted_and_legacy_for_one_image():
    image = Image.from_api(described({"Encrypted": False}, VirtualizationType="paravirtual"), "us-east-1")

    problems = ImageHygieneCheck().evaluate(RegionFacts("us-east-1", [image]), context(Settings()))

    assert sorted(problem.verdict.type for problem in problems) == ["ami-legacy-platform", "unencrypted-ami"]


@pytest.mark.parametrize(
    ("trusted", "severity"), [(("222233334444",), "low"), ((), "high")], ids=["trusted", "untrusted"]
)
def test_shared_snapshot_use_is_high_unless_the_account_is_trusted(trusted, severity):
    # Given the service event CloudTrail records when account 222233334444 copies a shared snapshot
    event = json.loads((ROOT / "events" / "public_guard" / "shared-snapshot-copy-initiated.json").read_text())
    event["detail"]["userIdentity"]["accountId"] = "222233334444"
    use = read_snapshot_use(event, expected_names=SHARED_SNAPSHOT_EVENTS)
    assert not isinstance(use, Drop), use
    # When
    verdict = shared_snapshot_used_verdict(
        use, trusted_principals=trusted, backed_images=["ami-0123456789abcdef0"], still_shared=True
    )
    # Then

    assert verdict.type == "shared-snapshot-used" and verdict.severity == severity
    assert verdict.evidence["used_by"] == "222233334444"
    assert "222233334444 copied snapshot snap-0abcdef1234567890" in verdict.summary


class _Tagging:
    def __init__(self, instances: int) -> None:
        self.instances = instances
        self.deprecated: list[str] = []

    def instances_using(self, image_id: str) -> int:
        return self.instances

    def deprecate(self, image_id: str, at: datetime) -> None:
        self.deprecated.append(image_id)


class _Ports:
    def __init__(self, tagging: _Tagging) -> None:
        self.tagging = tagging


@pytest.mark.parametrize(("instances", "deprecated"), [(0, ["ami-0123456789abcdef0"]), (1, [])])
def test_deprecation_is_refused_when_an_instance_was_launched_since_the_scan(instances, deprecated):
    tagging = _Tagging(instances)
    remedy = DeprecateIdleImage("ami-0123456789abcdef0", NOW)

    if instances:
        with pytest.raises(RemedyRefused):
            remedy.apply(_Ports(tagging))
    else:
        remedy.apply(_Ports(tagging))

    assert tagging.deprecated == deprecated
