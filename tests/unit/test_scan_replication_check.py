"""The scan's replication check: approved AMIs without a DR replica, replicas whose source is gone, judged from
the AMI lists alone (no call of its own), with dr_replicator's own copy request and ReplicaCleanup as remedies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from amiguard.models.findings import Action, FindingType
from amiguard.models.images import Image
from amiguard.models.settings import ReplicaCleanup, load_settings
from amiguard.policy.checks import CheckContext, CleanUpReplica, CopyToDrRegion, RegionFacts, ReplicationCheck
from amiguard.policy.replication import client_token, copy_request, deprecate_at

OWN = "123456789012"
HOME, DR1, DR2 = "us-east-1", "us-west-2", "eu-west-1"
SOURCE = "ami-0123456789abcdef0"
REPLICA = "ami-0fedcba9876543210"
NOW = datetime(2026, 11, 27, 6, 0, 30, tzinfo=UTC)
KEY = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def ami(image_id: str = SOURCE, region: str = HOME, **kw: Any) -> Image:
    return Image(image_id=image_id, region=region, owner_id=OWN, name="golden", **kw)


def approved(image_id: str = SOURCE, region: str = HOME, **kw: Any) -> Image:
    return ami(image_id, region, tags={"amiguard:approved": "true"}, **kw)


def replica(of: str = f"{HOME}/{SOURCE}", region: str = DR1, image_id: str = REPLICA, **kw: Any) -> Image:
    return ami(image_id, region, tags={"amiguard:replica-of": of, "amiguard:approved": "true"}, **kw)


def context(inventory: dict[str, list[Image]], **settings: Any) -> CheckContext:
    values = {"dr_regions": f"{DR1},{DR2}", "dr_kms_keys": f'{{"{DR1}": "{KEY}"}}'} | settings
    return CheckContext(load_settings(**values), account=OWN, fix=False, inventory=inventory, now=NOW)


def evaluate(region: str, inventory: dict[str, list[Image]], **settings: Any) -> list[Any]:
    return ReplicationCheck().evaluate(RegionFacts(region, inventory[region]), context(inventory, **settings))


def test_approved_image_without_replicas_needs_a_copy_per_dr_region_when_both_regions_are_listed() -> None:
    # Given
    source = approved()
    inventory = {HOME: [source], DR1: [], DR2: []}
    # When
    problems = evaluate(HOME, inventory)
    # Then: dr_replicator's own request (same builder, same ClientToken), one per destination
    assert [p.verdict.type for p in problems] == [FindingType.NOT_REPLICATED] * 2
    assert [p.remedy for p in problems] == [
        CopyToDrRegion(copy_request(source, DR1, {DR1: KEY})),
        CopyToDrRegion(copy_request(source, DR2, {})),
    ]
    assert problems[0].remedy.request.client_token == client_token(HOME, SOURCE, DR1)
    assert problems[0].verdict.evidence["destination_region"] == DR1


@pytest.mark.parametrize(
    ("state", "missing"),
    [("available", []), ("pending", []), ("failed", [DR1])],
    ids=["available", "pending", "failed-copy"],
)
def test_live_replica_satisfies_its_region_when_the_replica_state_varies(state: str, missing: list[str]) -> None:
    # Given a replica in DR1 (and one in DR2)
    inventory = {HOME: [approved()], DR1: [replica(state=state)], DR2: [replica(region=DR2)]}
    # When
    problems = evaluate(HOME, inventory)
    # Then
    assert [p.remedy.request.destination_region for p in problems] == missing


def test_unlisted_dr_region_is_never_called_a_gap_when_it_could_not_be_listed() -> None:
    # Given DR2 could not be listed (missing from the inventory)
    inventory = {HOME: [approved()], DR1: []}
    # When / Then
    assert [p.remedy.request.destination_region for p in evaluate(HOME, inventory)] == [DR1]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (ami(), []),  # not approved
        (approved(state="pending"), []),  # its available state change copies it
        (approved(product_codes=("abc123",)), [FindingType.NOT_REPLICABLE]),
    ],
    ids=["not-approved", "pending", "marketplace"],
)
def test_only_ready_copyable_approved_images_need_copies_when_the_source_varies(
    source: Image, expected: list[FindingType]
) -> None:
    # Given / When
    problems = evaluate(HOME, {HOME: [source], DR1: [], DR2: []})
    # Then
    assert [p.verdict.type for p in problems] == expected
    assert all(p.remedy is None for p in problems)


def test_approved_image_in_a_dr_region_needs_copies_only_in_the_others_when_scanned_there() -> None:
    # Given an approved AMI built in DR1 itself
    source = approved(region=DR1)
    # When
    problems = evaluate(DR1, {HOME: [], DR1: [source], DR2: []})
    # Then
    assert [p.remedy.request.destination_region for p in problems] == [DR2]


def test_nothing_is_checked_for_replicas_when_replication_is_off() -> None:
    # Given / When / Then
    assert evaluate(HOME, {HOME: [approved()]}, dr_regions="") == []


def test_replica_whose_source_is_gone_is_cleaned_up_per_replica_cleanup_when_its_source_region_is_listed() -> None:
    # Given a replica of an AMI no longer in us-east-1's list
    orphan = replica()
    inventory = {HOME: [ami("ami-0aaaaaaaaaaaaaaaa")], DR1: [orphan]}
    # When
    problems = evaluate(DR1, inventory)
    # Then
    assert [p.verdict.type for p in problems] == [FindingType.REPLICA_CLEANUP]
    assert problems[0].image == orphan
    assert problems[0].remedy == CleanUpReplica(DR1, REPLICA, ReplicaCleanup.DEPRECATE, deprecate_at(NOW))
    assert problems[0].remedy.done is Action.DEPRECATED
    assert problems[0].remedy.would is Action.NONE
    assert problems[0].verdict.evidence == {"source": f"{HOME}/{SOURCE}", "replica_id": REPLICA, "cleanup": "deprecate"}


@pytest.mark.parametrize(
    ("inventory", "orphaned"),
    [
        ({HOME: [ami()], DR1: [replica()]}, False),  # source exists
        ({HOME: [ami(state="deregistered")], DR1: [replica()]}, True),  # listed but deregistered
        ({DR1: [replica()]}, False),  # source region could not be listed: cannot tell
        ({HOME: [], DR1: [replica(of="not-a-source")]}, False),  # malformed tag: not amiguard's
    ],
    ids=["source-exists", "source-deregistered", "source-region-unlisted", "malformed-tag"],
)
def test_replica_is_orphaned_only_when_its_listed_source_is_gone(
    inventory: dict[str, list[Image]], orphaned: bool
) -> None:
    # Given / When / Then
    assert bool(evaluate(DR1, inventory)) is orphaned


@pytest.mark.parametrize(
    ("cleanup", "deprecation", "problem"),
    [
        ("deprecate", None, True),
        ("deprecate", "2026-11-27T06:02:00.000Z", False),  # what amiguard sets: already done
        ("deprecate", "2028-01-01T00:00:00.000Z", True),  # deprecated far later than amiguard would
        ("deregister", "2026-11-27T06:02:00.000Z", True),  # deprecated is not gone
        ("none", None, True),  # reported, kept
    ],
    ids=["deprecate-new", "deprecate-done", "deprecate-later", "deregister-deprecated", "none"],
)
def test_orphan_cleanup_is_needed_until_done_when_the_cleanup_setting_varies(
    cleanup: str, deprecation: str | None, problem: bool
) -> None:
    # Given
    inventory = {HOME: [], DR1: [replica(deprecation_time=deprecation)]}
    # When
    problems = evaluate(DR1, inventory, replica_cleanup=cleanup)
    # Then
    assert bool(problems) is problem
    if problems and cleanup == "none":
        assert problems[0].remedy is None


def test_regions_needed_are_the_dr_regions_and_replica_sources_not_scanned_when_only_home_is_scanned() -> None:
    # Given home scanned: an approved AMI (needs DR1, DR2) and a replica of an AMI in ap-south-1
    scanned = {HOME: [approved(), replica(of="ap-south-1/ami-0aaaaaaaaaaaaaaaa", region=HOME)]}
    # When
    needed = ReplicationCheck().regions_needed(scanned, context(scanned))
    # Then
    assert needed == {DR1, DR2, "ap-south-1"}


def test_no_region_is_needed_when_nothing_is_approved_or_replicated() -> None:
    scanned = {HOME: [ami()], DR1: []}
    assert ReplicationCheck().regions_needed(scanned, context(scanned)) == frozenset()
