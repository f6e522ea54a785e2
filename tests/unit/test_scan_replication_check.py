"""The scan's replication check: approved AMIs without a DR replica, replicas whose source is gone, judged from
the AMI lists alone (no call of its own), with dr_replicator's own copy request and ReplicaCleanup as remedies."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from amiguard.models.findings import Action, FindingType
from amiguard.models.images import Image
from amiguard.models.replicas import ReplicaRecord, ReplicaStatus
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
    """A copy as EC2 reports it (SourceImageRegion/SourceImageId), tagged as the replica of the same source."""
    copied_from = dict(zip(("source_region", "source_image_id"), of.split("/"), strict=False)) if "/" in of else {}
    return ami(image_id, region, tags={"amiguard:replica-of": of}, **(copied_from | kw))


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
        CopyToDrRegion(copy_request(source, DR1, {DR1: KEY}, approval_tag="amiguard:approved")),
        CopyToDrRegion(copy_request(source, DR2, {}, approval_tag="amiguard:approved")),
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
    assert problems[0].verdict.evidence == {
        "source": f"{HOME}/{SOURCE}",
        "replica_id": REPLICA,
        "cleanup": "deprecate",
        "recorded": True,  # no ledger given: EC2 says it is a copy of the source its tag names
    }


@pytest.mark.parametrize(
    ("inventory", "orphaned"),
    [
        ({HOME: [ami()], DR1: [replica()]}, False),  # source exists
        ({HOME: [ami(state="deregistered")], DR1: [replica()]}, True),  # listed but deregistered
        ({DR1: [replica()]}, False),  # source region could not be listed: cannot tell
        ({HOME: [], DR1: [replica(of="not-a-source")]}, False),  # malformed tag: not amiguard's
        ({HOME: [], DR1: [ami(REPLICA, DR1, tags={"amiguard:replica-of": f"{HOME}/{SOURCE}"})]}, False),  # tag alone
    ],
    ids=["source-exists", "source-deregistered", "source-region-unlisted", "malformed-tag", "tag-alone"],
)
def test_replica_is_orphaned_only_when_its_listed_source_is_gone(
    inventory: dict[str, list[Image]], orphaned: bool
) -> None:
    # Given / When / Then
    found = [p.verdict.type for p in evaluate(DR1, inventory)]
    assert (FindingType.REPLICA_CLEANUP in found) is orphaned


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


# --- with the ledger: which copies amiguard made ------------------------------------------------------------


def row(status: str = "available", replica_id: str | None = REPLICA, region: str = DR1, **kw: Any) -> ReplicaRecord:
    values: dict[str, Any] = {
        "source_region": HOME,
        "source_image_id": SOURCE,
        "destination_region": region,
        "status": ReplicaStatus(status),
        "replica_id": replica_id,
        "started_at": datetime(2026, 11, 20, tzinfo=UTC),
    }
    return ReplicaRecord.model_validate(values | kw)


def evaluate_with(
    region: str, inventory: dict[str, list[Image]], records: dict[tuple[str, str], dict[str, ReplicaRecord]], **kw: Any
) -> list[Any]:
    ctx = replace(context(inventory, **kw), replica_records=records)
    return ReplicationCheck().evaluate(RegionFacts(region, inventory[region]), ctx)


def test_unrecorded_copy_of_a_gone_source_is_reported_never_cleaned_up_when_the_ledger_does_not_know_it() -> None:
    # Given a copy EC2 and its tag agree on, of a source now gone; the ledger has no row naming it
    inventory = {HOME: [], DR1: [replica()]}
    # When
    [problem] = evaluate_with(DR1, inventory, {(HOME, SOURCE): {}})
    # Then
    assert problem.verdict.type is FindingType.REPLICA_CLEANUP and problem.remedy is None
    assert problem.verdict.evidence["recorded"] is False


def test_recorded_replica_is_cleaned_up_even_when_its_replica_of_tag_was_removed() -> None:
    untagged = ami(REPLICA, DR1, source_region=HOME, source_image_id=SOURCE)
    inventory = {HOME: [], DR1: [untagged]}

    [problem] = evaluate_with(DR1, inventory, {(HOME, SOURCE): {DR1: row()}})

    assert problem.remedy == CleanUpReplica(DR1, REPLICA, ReplicaCleanup.DEPRECATE, deprecate_at(NOW))


def test_recorded_replica_whose_tag_was_removed_is_no_source_when_it_carries_the_approval_tag() -> None:
    untagged = ami(REPLICA, DR1, tags={"amiguard:approved": "true"}, source_region=HOME, source_image_id=SOURCE)
    inventory = {HOME: [approved()], DR1: [untagged], DR2: []}

    assert evaluate_with(DR1, inventory, {(HOME, SOURCE): {DR1: row()}, (DR1, REPLICA): {}}) == []


def test_approved_ami_with_a_forged_replica_tag_is_reported_and_needs_its_copies_when_scanned() -> None:
    forged = ami(tags={"amiguard:approved": "true", "amiguard:replica-of": f"{DR1}/ami-0aaaabbbbccccdddd"})
    inventory = {HOME: [forged], DR1: [], DR2: []}
    records: dict[tuple[str, str], dict[str, ReplicaRecord]] = {(HOME, SOURCE): {}, (DR1, "ami-0aaaabbbbccccdddd"): {}}

    problems = evaluate_with(HOME, inventory, records)

    assert [p.verdict.type for p in problems] == [
        FindingType.FORGED_AMIGUARD_TAG,
        FindingType.NOT_REPLICATED,
        FindingType.NOT_REPLICATED,
    ]
    assert problems[0].verdict.severity == "high" and problems[0].remedy is None


@pytest.mark.parametrize(
    ("record", "listed", "generation"),
    [
        (row(), [], 2),  # deregistered by hand: gone from the list
        (row("failed"), [replica(state="failed")], 2),  # its copy failed
        (row(generation=2), [replica(state="deregistered")], 3),
        (row(), [replica()], None),  # alive: nothing to do
        (row("pending", started_at=NOW), [], None),  # just started: may not be listed yet
    ],
    ids=["deregistered-by-hand", "failed", "third-generation", "alive", "just-started"],
)
def test_dead_recorded_copy_is_replaced_with_the_next_generations_token_when_scanned(
    record: ReplicaRecord, listed: list[Image], generation: int | None
) -> None:
    inventory = {HOME: [approved()], DR1: listed, DR2: [replica(region=DR2, image_id="ami-0bbbbbbbbbbbbbbbb")]}
    records = {(HOME, SOURCE): {DR1: record, DR2: row(region=DR2, replica_id="ami-0bbbbbbbbbbbbbbbb")}}

    problems = evaluate_with(HOME, inventory, records)

    tokens = [p.remedy.request.client_token for p in problems]
    assert tokens == ([] if generation is None else [client_token(HOME, SOURCE, DR1, generation)])


def test_nothing_is_judged_when_the_ledger_could_not_be_read_for_the_source() -> None:
    inventory = {HOME: [approved()], DR1: [], DR2: []}
    assert evaluate_with(HOME, inventory, {}) == []


def test_approved_copy_someone_tagged_a_replica_still_needs_its_copies_when_the_ledger_does_not_record_it() -> None:
    # Given an approved AMI in us-east-1 that a team copied from eu-west-1 by hand; someone tags it a "replica"
    # of that source (EC2 agrees it is a copy of it): it must not vanish from replication
    copied = ami(
        tags={"amiguard:approved": "true", "amiguard:replica-of": f"{DR2}/ami-0aaaabbbbccccdddd"},
        source_region=DR2,
        source_image_id="ami-0aaaabbbbccccdddd",
    )
    inventory = {HOME: [copied], DR1: [], DR2: [ami("ami-0aaaabbbbccccdddd", DR2)]}
    records: dict[tuple[str, str], dict[str, ReplicaRecord]] = {(HOME, SOURCE): {}, (DR2, "ami-0aaaabbbbccccdddd"): {}}

    problems = evaluate_with(HOME, inventory, records)

    assert [(p.verdict.type, p.verdict.evidence["destination_region"]) for p in problems] == [
        (FindingType.NOT_REPLICATED, DR1),
        (FindingType.NOT_REPLICATED, DR2),
    ]
