"""DR replication policy: approval, copyability, destinations, the ClientToken and the CopyImage request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from amiguard.models.images import Image
from amiguard.models.replicas import ReplicaRecord, ReplicaStatus
from amiguard.models.settings import ReplicaCleanup, SettingsError, load_settings
from amiguard.policy.replication import (
    COPY_ATTEMPTS,
    Blocker,
    after_copy_error,
    approval_change,
    client_token,
    copy_request,
    deprecate_at,
    destination_regions,
    is_approved,
    is_replica,
    parse_replica_of,
    plan_copy,
    replica_standing,
    replication_blocker,
    source_candidates,
)

ACCOUNT = "123456789012"
APPROVAL = "amiguard:approved"
SOURCE = "ami-0123456789abcdef0"


def image(**overrides: object) -> Image:
    fields: dict[str, object] = {
        "image_id": SOURCE,
        "region": "us-east-1",
        "owner_id": ACCOUNT,
        "name": "golden-base",
        "description": "Golden base image",
        "tags": {"amiguard:approved": "true"},
    }
    fields.update(overrides)
    return Image.model_validate(fields)


# --- ClientToken -----------------------------------------------------------------------------------------


def test_client_token_is_identical_when_source_and_destination_repeat():
    assert client_token("us-east-1", SOURCE, "us-west-2") == client_token("us-east-1", SOURCE, "us-west-2")


@pytest.mark.parametrize(
    "other",
    [("us-east-1", SOURCE, "eu-west-1"), ("us-east-2", SOURCE, "us-west-2"), ("us-east-1", "ami-0fff", "us-west-2")],
)
def test_client_token_differs_when_source_or_destination_differs(other):
    assert client_token("us-east-1", SOURCE, "us-west-2") != client_token(*other)


def test_client_token_fits_ec2_idempotency_limit_when_built():
    token = client_token("us-gov-west-1", "ami-0123456789abcdef0", "us-gov-east-1")

    assert len(token) <= 64 and token.isascii() and token.isalnum()


# --- approval and copyability ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "approved"),
    [
        ({"amiguard:approved": "true"}, True),
        ({"amiguard:approved": " TRUE "}, True),
        ({"amiguard:approved": "false"}, False),
        ({"amiguard:approved": "yes"}, False),
        ({"amiguard:approved": ""}, False),
        ({"Approved": "true"}, False),
        ({}, False),
    ],
)
def test_approval_is_read_from_tag_value_when_tags_vary(tags, approved):
    assert is_approved(tags, "amiguard:approved") is approved


@pytest.mark.parametrize(
    ("overrides", "blocker"),
    [
        ({}, None),
        ({"product_codes": ("8fjdh3kd83jd83kfjfy7v9ska",)}, Blocker.PRODUCT_CODES),
        ({"owner_id": "999988887777", "encrypted": True}, Blocker.ENCRYPTED_SHARED),
        ({"owner_id": "999988887777"}, Blocker.NOT_OWNED),
        ({"owner_id": "999988887777", "product_codes": ("abc",)}, Blocker.PRODUCT_CODES),
    ],
)
def test_blocker_names_the_reason_when_ami_cannot_be_copied(overrides, blocker):
    assert replication_blocker(image(**overrides), ACCOUNT) is blocker


def replica_image(tags: dict[str, str] | None = None, copied_from: tuple[str, str] | None = ("us-east-1", SOURCE)):
    """An AMI in us-west-2; ``copied_from`` is what EC2 reports as its SourceImageRegion/SourceImageId."""
    region, source = copied_from or (None, None)
    return image(
        image_id="ami-0fedcba9876543210",
        region="us-west-2",
        tags={"amiguard:replica-of": f"us-east-1/{SOURCE}"} if tags is None else tags,
        source_region=region,
        source_image_id=source,
    )


def test_replica_is_recognised_without_the_ledger_only_when_ec2_and_its_tag_name_the_same_source():
    assert is_replica(replica_image())
    assert not is_replica(replica_image(copied_from=None))  # the tag alone: anyone's to write
    assert not is_replica(replica_image(copied_from=("us-east-1", "ami-0aaaabbbbccccdddd")))
    assert not is_replica(replica_image(tags={"amiguard:replica-of": "garbage"}))
    assert not is_replica(image())


@pytest.mark.parametrize(
    ("tags", "copied_from", "recorded", "standing"),
    [
        (None, ("us-east-1", SOURCE), True, "recorded"),
        ({}, ("us-east-1", SOURCE), True, "recorded"),  # its tag was removed: the ledger still knows it
        (None, ("us-east-1", SOURCE), False, "copy"),
        (None, None, False, "forged"),  # tagged on an AMI EC2 says is no copy
        (None, ("us-west-2", "ami-0aaaabbbbccccdddd"), False, "forged"),  # CreateImage in its own region
        (None, ("eu-west-1", SOURCE), False, "forged"),
        ({"amiguard:replica-of": "garbage"}, ("us-east-1", SOURCE), False, "forged"),
        ({}, ("us-east-1", SOURCE), False, "none"),
    ],
)
def test_replica_standing_comes_from_the_ledger_and_ec2_when_a_tag_makes_a_claim(tags, copied_from, recorded, standing):
    assert replica_standing(replica_image(tags, copied_from), recorded=recorded) == standing


def test_ledger_is_asked_about_ec2s_source_first_then_the_tags_when_both_are_known():
    forged = replica_image({"amiguard:replica-of": "eu-west-1/ami-0aaaabbbbccccdddd"})
    assert source_candidates(forged) == (("us-east-1", SOURCE), ("eu-west-1", "ami-0aaaabbbbccccdddd"))
    assert source_candidates(replica_image()) == (("us-east-1", SOURCE),)
    assert source_candidates(image()) == ()  # no claim, no copy: no ledger query


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("us-east-1/ami-0123456789abcdef0", ("us-east-1", "ami-0123456789abcdef0")),
        ("us-east-1/ami-12345678", ("us-east-1", "ami-12345678")),
        ("ami-0123456789abcdef0", None),
        ("us-east-1/ami-0123/extra", None),
        ("nowhere/ami-0123456789abcdef0", None),
        ("us-east-1/snap-0123456789abcdef0", None),
        (None, None),
    ],
)
def test_replica_of_is_parsed_only_when_well_formed(value, parsed):
    assert parse_replica_of(value) == parsed


# --- destinations ------------------------------------------------------------------------------------------


def test_destinations_exclude_source_region_when_it_is_a_dr_region():
    assert destination_regions("us-west-2", ["us-west-2", "eu-west-1", "eu-west-1"]) == ("eu-west-1",)


NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def row(status: ReplicaStatus, replica_id: str | None = "ami-0fedcba9876543210", **fields: object) -> ReplicaRecord:
    values: dict[str, object] = {
        "source_region": "us-east-1",
        "source_image_id": SOURCE,
        "destination_region": "us-west-2",
        "status": status,
        "replica_id": replica_id,
        "started_at": NOW - timedelta(hours=2),
        "generation": 1,
    }
    return ReplicaRecord.model_validate(values | fields)


@pytest.mark.parametrize(
    ("record", "replica_state", "copy", "generation", "replaces"),
    [
        (None, None, True, 1, None),
        (row(ReplicaStatus.AVAILABLE), "available", False, 1, None),
        (row(ReplicaStatus.PENDING), "pending", False, 1, None),
        (row(ReplicaStatus.AVAILABLE), "disabled", False, 1, None),
        # the copy failed: a new generation, so a new ClientToken (the old one would return the failed copy)
        (row(ReplicaStatus.FAILED), None, True, 2, "ami-0fedcba9876543210"),
        (row(ReplicaStatus.PENDING), "failed", True, 2, "ami-0fedcba9876543210"),
        # deregistered by hand: EC2 shows it deregistered for a while, then not at all
        (row(ReplicaStatus.AVAILABLE, generation=3), "deregistered", True, 4, "ami-0fedcba9876543210"),
        (row(ReplicaStatus.AVAILABLE), None, True, 2, "ami-0fedcba9876543210"),
        # just made: DescribeImages may not show it yet
        (row(ReplicaStatus.PENDING, started_at=NOW - timedelta(minutes=1)), None, False, 1, None),
        (row(ReplicaStatus.AVAILABLE, started_at=NOW - timedelta(minutes=1)), None, True, 2, "ami-0fedcba9876543210"),
        # CopyImage never returned an id: the same token again
        (row(ReplicaStatus.RETRYING, None, generation=2), None, True, 2, None),
        (row(ReplicaStatus.WOULD_COPY, None), None, True, 1, None),
        (row(ReplicaStatus.DEPRECATED), None, True, 2, "ami-0fedcba9876543210"),
    ],
)
def test_copy_plan_reconciles_the_ledger_row_with_ec2_when_a_destination_is_checked(
    record, replica_state, copy, generation, replaces
):
    replica = replica_image().model_copy(update={"state": replica_state}) if replica_state else None
    plan = plan_copy(record, replica, NOW)
    assert (plan.copy, plan.generation, plan.replaces) == (copy, generation, replaces)


def test_client_token_is_new_for_each_generation_and_unchanged_for_the_first():
    first = client_token("us-east-1", SOURCE, "us-west-2")
    assert client_token("us-east-1", SOURCE, "us-west-2", 1) == first
    later = {client_token("us-east-1", SOURCE, "us-west-2", n) for n in (2, 3, 4)}
    assert len(later) == 3 and first not in later and all(len(token) == 64 for token in later)


# --- the CopyImage request ---------------------------------------------------------------------------------


def test_copy_request_is_encrypted_with_named_key_and_tagged_when_region_has_a_key():
    request = copy_request(image(), "us-west-2", {"us-west-2": "alias/dr-amis"}, approval_tag="amiguard:approved")

    assert request.as_api() == {
        "SourceRegion": "us-east-1",
        "SourceImageId": SOURCE,
        "Name": "golden-base",
        "Description": "Golden base image",
        "ClientToken": client_token("us-east-1", SOURCE, "us-west-2"),
        "Encrypted": True,
        "KmsKeyId": "alias/dr-amis",
        "TagSpecifications": [
            {
                "ResourceType": "image",
                "Tags": [
                    {"Key": "amiguard:replica-of", "Value": f"us-east-1/{SOURCE}"},
                    {"Key": "amiguard:source-image", "Value": SOURCE},
                    {"Key": "amiguard:source-region", "Value": "us-east-1"},
                ],
            },
            {"ResourceType": "snapshot", "Tags": [{"Key": "amiguard:replica-of", "Value": f"us-east-1/{SOURCE}"}]},
        ],
    }


def test_copy_request_uses_default_ebs_key_when_region_has_none():
    params = copy_request(image(), "eu-west-1", {"us-west-2": "alias/dr-amis"}, approval_tag=APPROVAL).as_api()

    assert params["Encrypted"] is True and "KmsKeyId" not in params


def test_copy_request_describes_the_replica_when_source_has_no_description():
    params = copy_request(image(description=None), "eu-west-1", {}, approval_tag=APPROVAL).as_api()

    assert params["Description"] == f"DR replica of us-east-1/{SOURCE}"


def test_copy_request_truncates_description_when_longer_than_ec2_allows():
    params = copy_request(image(description="x" * 400), "eu-west-1", {}, approval_tag=APPROVAL).as_api()

    assert len(params["Description"]) == 255


def test_replica_keeps_the_sources_own_tags_but_not_its_approval_or_amiguard_tags_when_copied():
    source = image(
        tags={
            "amiguard:approved": "true",
            "Owner": "bob@example.com",
            "amiguard:violation": "missing:CostCenter",
            "amiguard:replica-of": "eu-west-1/ami-0aaaabbbbccccdddd",
        }
    )
    tags = dict(copy_request(source, "us-west-2", {}, approval_tag="amiguard:approved").tags)
    assert tags == {
        "Owner": "bob@example.com",
        "amiguard:replica-of": f"us-east-1/{SOURCE}",
        "amiguard:source-image": SOURCE,
        "amiguard:source-region": "us-east-1",
    }


def test_replica_tags_fit_ec2s_limit_when_the_source_has_fifty_tags():
    source = image(tags={f"k{n:02}": "v" for n in range(50)})
    tags = copy_request(source, "us-west-2", {}, approval_tag="amiguard:approved").tags
    assert len(tags) == 50 and tags[-3][0] == "amiguard:replica-of"


def test_copy_request_carries_the_generations_token_when_a_dead_copy_is_replaced():
    request = copy_request(image(), "us-west-2", {}, approval_tag=APPROVAL, generation=2)
    assert request.client_token == client_token("us-east-1", SOURCE, "us-west-2", 2) and request.generation == 2


def test_approval_change_names_each_ami_once_when_a_call_repeats_it_a_thousand_times():
    params = tag_params([SOURCE] * 1000 + ["ami-0fedcba9876543210"], [{"key": APPROVAL, "value": "true"}])
    change = approval_change("CreateTags", params, {}, APPROVAL)
    assert change.granted == (SOURCE, "ami-0fedcba9876543210")


# --- approval changes from CloudTrail ----------------------------------------------------------------------


def tag_params(resources, tags):
    return {
        "resourcesSet": {"items": [{"resourceId": r} for r in resources]},
        "tagSet": {"items": tags},
    }


@pytest.mark.parametrize(
    ("event_name", "params", "response", "granted", "removed"),
    [
        ("CreateTags", tag_params([SOURCE], [{"key": "amiguard:approved", "value": "true"}]), {}, (SOURCE,), ()),
        ("CreateTags", tag_params([SOURCE], [{"key": "amiguard:approved", "value": "false"}]), {}, (), (SOURCE,)),
        ("DeleteTags", tag_params([SOURCE], [{"key": "amiguard:approved"}]), {}, (), (SOURCE,)),
        ("CreateTags", tag_params([SOURCE], [{"key": "Owner", "value": "bob"}]), {}, (), ()),
        (
            "CreateTags",
            tag_params(["i-0dc224bad2cb08740", SOURCE], [{"key": "amiguard:approved", "value": "true"}]),
            {},
            (SOURCE,),
            (),
        ),
        (
            "CreateTags",
            tag_params(["vol-0f9e1b2c3d4e5f6a7"], [{"key": "amiguard:approved", "value": "true"}]),
            {},
            (),
            (),
        ),
        (
            "CreateImage",
            {
                "instanceId": "i-0dc224bad2cb08740",
                "name": "golden",
                "tagSpecificationSet": {
                    "items": [{"resourceType": "image", "tags": [{"key": "amiguard:approved", "value": "true"}]}]
                },
            },
            {"imageId": SOURCE},
            (SOURCE,),
            (),
        ),
        (
            "CopyImage",
            {
                "sourceRegion": "us-west-2",
                "sourceImageId": "ami-0528b3966f95526ee",
                "tagSpecificationSet": {
                    "items": [{"resourceType": "snapshot", "tags": [{"key": "amiguard:approved", "value": "true"}]}]
                },
            },
            {"imageId": SOURCE},
            (),
            (),
        ),
        ("RegisterImage", {"name": "golden"}, {"imageId": SOURCE}, (), ()),
    ],
)
def test_approval_change_names_the_amis_when_cloudtrail_call_touches_the_tag(
    event_name, params, response, granted, removed
):
    change = approval_change(event_name, params, response, "amiguard:approved")

    assert (change.granted, change.removed) == (granted, removed)


def test_malformed_ami_id_is_ignored_when_tagged():
    change = approval_change(
        "CreateTags",
        tag_params(["ami-XXXXXXXX"], [{"key": "amiguard:approved", "value": "true"}]),
        {},
        "amiguard:approved",
    )

    assert change.empty and change.ignored == ("ami-XXXXXXXX",)


# --- failures and cleanup ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "previous", "retry"),
    [
        ("RequestLimitExceeded", 0, True),
        ("ResourceLimitExceeded", 1, True),
        ("ResourceLimitExceeded", COPY_ATTEMPTS - 1, False),
        ("InvalidParameterValue", 0, False),
        ("UnauthorizedOperation", 0, False),
        ("InvalidAMIName.Duplicate", 0, False),
    ],
)
def test_copy_error_is_retried_within_bounds_when_transient(code, previous, retry):
    failure = after_copy_error(code, previous)

    assert failure.retry is retry and failure.attempts == previous + 1


def test_deprecation_time_is_a_future_whole_minute_when_computed():
    now = datetime(2026, 11, 26, 14, 59, 59, 999000, tzinfo=UTC)

    at = deprecate_at(now)

    assert at > now and at.second == 0 and at.microsecond == 0 and (at - now).total_seconds() <= 120


# --- settings ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["deprecate", "deregister", "none"])
def test_replica_cleanup_is_read_when_valid(value, monkeypatch):
    monkeypatch.setenv("AMIGUARD_REPLICA_CLEANUP", value)

    assert load_settings().replica_cleanup is ReplicaCleanup(value)


def test_replica_cleanup_error_names_the_variable_when_unknown(monkeypatch):
    monkeypatch.setenv("AMIGUARD_REPLICA_CLEANUP", "delete")

    with pytest.raises(SettingsError, match="AMIGUARD_REPLICA_CLEANUP"):
        load_settings()


def test_dr_key_error_names_the_variable_when_key_arn_is_in_another_region(monkeypatch):
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    monkeypatch.setenv("AMIGUARD_DR_KMS_KEYS", f'{{"us-west-2": "{key}"}}')

    with pytest.raises(SettingsError, match="AMIGUARD_DR_KMS_KEYS"):
        load_settings()
