"""Event models and screening against every recorded sample: parsed or dropped with a reason, never a crash."""

import pytest

from amiguard.models.events import AmiStateChangeEvent, CloudTrailEvent
from amiguard.policy.identity import OwnRoles
from amiguard.policy.screening import screen_cloudtrail
from tests.samples import all_sample_names, load_sample

PUBLIC_GUARD_EVENTS = frozenset({"ModifyImageAttribute", "ModifySnapshotAttribute", "DisableImageBlockPublicAccess"})
OWN_ROLE = "arn:aws:iam::123456789012:role/amiguard/amiguard-PublicGuardRole-1A2B3C"
OWN = OwnRoles.of([OWN_ROLE])


@pytest.mark.parametrize("name", all_sample_names())
def test_every_sample_parses_when_delivered_by_eventbridge(name):
    event = load_sample(name)
    model = AmiStateChangeEvent if event["detail-type"] == "EC2 AMI State Change" else CloudTrailEvent
    parsed = model.model_validate(event)
    assert parsed.detail is not None


def test_assumed_role_actor_is_issuer_role_and_session_when_console_user():
    event = CloudTrailEvent.model_validate(load_sample("cloudtrail-raw-createimage-console-panther.json"))
    assert event.detail.actor == "arn:aws:iam::123456789101:role/DevAdministrator/test_user"
    assert event.occurred_at is not None and event.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cloudtrail-raw-modifyimageattribute-add-group-all-error-panther.json", "failed-call"),
        ("cloudtrail-raw-failed-runinstances-unauthorized-stratus.json", "failed-call"),
        ("cloudtrail-raw-modifyimageattribute-add-userid-stratus.json", "malformed-event"),  # region me-south-1r
        ("cloudtrail-raw-modifysnapshotattribute-add-userid-stratus.json", "malformed-event"),
        ("cloudtrail-raw-modifysnapshotattribute-remove-group-all-elastic.json", "malformed-event"),  # 9-digit account
        ("cloudtrail-raw-createtags-resourcesset-c7n.json", "unhandled-event"),
    ],
)
def test_sample_is_dropped_with_reason_when_screened(name, reason):
    event = CloudTrailEvent.model_validate(load_sample(name))
    drop = screen_cloudtrail(event, expected_names=PUBLIC_GUARD_EVENTS, own=OWN)
    assert drop is not None and drop.reason == reason


def test_own_role_is_recognised_when_issuer_is_exactly_a_stack_role():
    event = load_sample("cloudtrail-raw-modifyimageattribute-add-group-all-panther.json")
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = OWN_ROLE
    drop = screen_cloudtrail(CloudTrailEvent.model_validate(event), expected_names=PUBLIC_GUARD_EVENTS, own=OWN)
    assert drop is not None and drop.reason == "amiguard-own-action"
