"""DR replication policy: approval, copyability, destinations, the ClientToken and the CopyImage request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from amiguard.models.images import Image
from amiguard.models.replicas import ReplicaStatus
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
    regions_to_copy,
    replication_blocker,
)

ACCOUNT = "123456789012"
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


def test_replica_is_recognised_when_replica_of_tag_is_present_even_malformed():
    assert is_replica(image(tags={"amiguard:replica-of": "garbage"}))
    assert not is_replica(image())


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


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({}, ("us-west-2", "eu-west-1")),
        ({"us-west-2": ReplicaStatus.PENDING}, ("eu-west-1",)),
        ({"us-west-2": ReplicaStatus.AVAILABLE, "eu-west-1": ReplicaStatus.AVAILABLE}, ()),
        ({"us-west-2": ReplicaStatus.FAILED, "eu-west-1": ReplicaStatus.RETRYING}, ("us-west-2", "eu-west-1")),
        ({"us-west-2": ReplicaStatus.WOULD_COPY}, ("us-west-2", "eu-west-1")),
        ({"us-west-2": ReplicaStatus.DEPRECATED}, ("us-west-2", "eu-west-1")),
    ],
)
def test_regions_to_copy_are_those_without_live_replica_when_ledger_has_rows(statuses, expected):
    assert regions_to_copy(("us-west-2", "eu-west-1"), statuses) == expected


# --- the CopyImage request ---------------------------------------------------------------------------------


def test_copy_request_is_encrypted_with_named_key_and_tagged_when_region_has_a_key():
    request = copy_request(image(), "us-west-2", {"us-west-2": "alias/dr-amis"})

    assert request.as_api() == {
        "SourceRegion": "us-east-1",
        "SourceImageId": SOURCE,
        "Name": "golden-base",
        "Description": "Golden base image",
        "ClientToken": client_token("us-east-1", SOURCE, "us-west-2"),
        "Encrypted": True,
        "KmsKeyId": "alias/dr-amis",
        "CopyImageTags": True,
        "TagSpecifications": [
            {
                "ResourceType": "image",
                "Tags": [
                    {"Key": "amiguard:replica-of", "Value": f"us-east-1/{SOURCE}"},
                    {"Key": "amiguard:source-image", "Value": SOURCE},
                    {"Key": "amiguard:source-region", "Value": "us-east-1"},
                ],
            }
        ],
    }


def test_copy_request_uses_default_ebs_key_when_region_has_none():
    params = copy_request(image(), "eu-west-1", {"us-west-2": "alias/dr-amis"}).as_api()

    assert params["Encrypted"] is True and "KmsKeyId" not in params


def test_copy_request_describes_the_replica_when_source_has_no_description():
    params = copy_request(image(description=None), "eu-west-1", {}).as_api()

    assert params["Description"] == f"DR replica of us-east-1/{SOURCE}"


def test_copy_request_truncates_description_when_longer_than_ec2_allows():
    params = copy_request(image(description="x" * 400), "eu-west-1", {}).as_api()

    assert len(params["Description"]) == 255


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
