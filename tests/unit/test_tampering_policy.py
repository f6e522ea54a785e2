"""policy.tampering: which CloudTrail calls change amiguard's own resources, named however AWS lets callers
name them; policy.coverage: a trail's selectors and a deployment read back."""

from __future__ import annotations

from typing import Any

import pytest

from amiguard.models.events import CloudTrailRecord
from amiguard.policy.coverage import (
    DeploymentState,
    FunctionState,
    RuleState,
    TrailState,
    coverage_gaps,
    records_management_writes,
)
from amiguard.policy.tampering import OwnResources, ResourceKind, api_name, tampering

CENTRAL_RULE = "amiguard-amiguard-central/amiguard-PublicGuardFunctionSharingChanged-Q1"  # organization mode
OWN = OwnResources(
    functions=frozenset({"amiguard-PublicGuardFunction-AbC123"}),
    rules=frozenset({"amiguard-SweeperFunctionSweep-XyZ789", CENTRAL_RULE}),
    roles=frozenset({"amiguard-PublicGuardRole-1Q2W3E"}),
    trails=frozenset({"management-events"}),
)


def record(source: str, name: str, request: dict[str, Any], **identity: Any) -> CloudTrailRecord:
    return CloudTrailRecord.model_validate(
        {
            "eventSource": f"{source}.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "requestParameters": request,
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice", **identity},
        }
    )


@pytest.mark.parametrize(
    ("source", "name", "request_parameters", "kind"),
    [
        (
            "lambda",
            "PutFunctionConcurrency20171031",
            {"functionName": "amiguard-PublicGuardFunction-AbC123"},
            "function",
        ),
        (
            "lambda",
            "UpdateFunctionConfiguration20150331v2",
            {"functionName": "arn:aws:lambda:us-east-1:123456789012:function:amiguard-PublicGuardFunction-AbC123"},
            "function",
        ),
        (
            "lambda",
            "RemovePermission20150331v2",
            {"functionName": "123456789012:function:amiguard-PublicGuardFunction-AbC123:live"},
            "function",
        ),
        ("events", "DisableRule", {"name": "amiguard-SweeperFunctionSweep-XyZ789"}, "rule"),
        (
            "events",
            "RemoveTargets",
            {"rule": "amiguard-SweeperFunctionSweep-XyZ789", "eventBusName": "default"},
            "rule",
        ),
        (
            "iam",
            "DeleteRolePolicy",
            {"roleName": "amiguard-PublicGuardRole-1Q2W3E", "policyName": "public-guard"},
            "role",
        ),
        (
            "cloudtrail",
            "StopLogging",
            {"name": "arn:aws:cloudtrail:us-east-1:123456789012:trail/management-events"},
            "trail",
        ),
        ("cloudtrail", "PutEventSelectors", {"trailName": "management-events"}, "trail"),
        (
            "events",
            "DisableRule",
            {"name": "amiguard-PublicGuardFunctionSharingChanged-Q1", "eventBusName": "amiguard-amiguard-central"},
            "rule",
        ),
        (
            "events",
            "RemoveTargets",
            {
                "rule": "amiguard-PublicGuardFunctionSharingChanged-Q1",
                "eventBusName": "arn:aws:events:us-east-1:123456789012:event-bus/amiguard-amiguard-central",
            },
            "rule",
        ),
        (
            "events",
            "RemovePermission",
            {"statementId": "AmiguardForwardersOfTheOrganization", "eventBusName": "amiguard-amiguard-central"},
            "event-bus",
        ),
        (
            "events",
            "DeleteEventBus",
            {"name": "arn:aws:events:us-east-1:123456789012:event-bus/amiguard-amiguard-central"},
            "event-bus",
        ),
    ],
)
def test_call_is_tampering_when_it_names_an_own_resource(
    source: str, name: str, request_parameters: dict[str, Any], kind: str
) -> None:
    found = tampering(record(source, name, request_parameters), OWN)

    assert found is not None
    assert (found.kind, found.deploy) == (ResourceKind(kind), False)


@pytest.mark.parametrize(
    ("source", "name", "request_parameters"),
    [
        ("lambda", "DeleteFunction20150331", {"functionName": "amiguard-PublicGuardFunction-AbC123-copy"}),
        ("events", "DisableRule", {"name": "amiguard-SweeperFunctionSweep-XyZ789", "eventBusName": "team-bus"}),
        ("events", "EnableRule", {"name": "amiguard-SweeperFunctionSweep-XyZ789"}),
        # the central bus's rule, named on the default bus (where amiguard has no such rule)
        ("events", "DisableRule", {"name": "amiguard-PublicGuardFunctionSharingChanged-Q1"}),
        ("events", "RemovePermission", {"statementId": "team", "eventBusName": "team-bus"}),
        ("events", "PutPermission", {"action": "events:PutEvents", "principal": "111122223333"}),  # the default bus
        ("iam", "PutRolePolicy", {"roleName": "amiguard-public-guard"}),
        ("cloudtrail", "StopLogging", {"name": "team-scratch"}),
        ("lambda", "GetFunction20150331v2", {"functionName": "amiguard-PublicGuardFunction-AbC123"}),
        ("events", "DeleteRule", {}),
    ],
)
def test_call_is_not_tampering_when_it_names_no_own_resource(
    source: str, name: str, request_parameters: dict[str, Any]
) -> None:
    assert tampering(record(source, name, request_parameters), OWN) is None


def test_call_is_a_deploy_when_cloudformation_invoked_it() -> None:
    found = tampering(
        record(
            "iam",
            "PutRolePolicy",
            {"roleName": "amiguard-PublicGuardRole-1Q2W3E"},
            invokedBy="cloudformation.amazonaws.com",
        ),
        OWN,
    )

    assert found is not None and found.deploy


def test_any_trail_is_amiguards_when_no_trail_is_named() -> None:
    own = OwnResources(functions=frozenset(), rules=frozenset(), roles=frozenset())

    assert tampering(record("cloudtrail", "DeleteTrail", {"name": "whatever-trail"}), own) is not None


def test_lambda_event_names_lose_their_version_suffix_when_read() -> None:
    assert api_name("lambda.amazonaws.com", "UpdateFunctionConfiguration20150331v2") == "UpdateFunctionConfiguration"
    assert api_name("lambda.amazonaws.com", "DeleteFunction20150331") == "DeleteFunction"
    assert api_name("events.amazonaws.com", "PutRule") == "PutRule"


@pytest.mark.parametrize(
    ("basic", "advanced", "custom", "writes"),
    [
        ([], [], False, True),  # no custom selectors: every management event
        ([{"ReadWriteType": "All", "IncludeManagementEvents": True}], [], True, True),
        ([{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}], [], True, False),
        ([{"ReadWriteType": "All", "IncludeManagementEvents": False}], [], True, False),
        ([], [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}], True, True),
        (
            [],
            [
                {
                    "FieldSelectors": [
                        {"Field": "eventCategory", "Equals": ["Management"]},
                        {"Field": "readOnly", "Equals": ["true"]},
                    ]
                }
            ],
            True,
            False,
        ),
        ([], [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}], True, False),
    ],
)
def test_trail_records_write_management_events_when_its_selectors_say_so(
    basic: list[dict[str, Any]], advanced: list[dict[str, Any]], custom: bool, writes: bool
) -> None:
    assert records_management_writes(basic, advanced, custom=custom) is writes


def test_deployment_has_no_gap_when_everything_is_as_deployed() -> None:
    state = DeploymentState(
        rules={"amiguard-SweeperFunctionSweep-XyZ789": RuleState(exists=True, enabled=True, targets=1)},
        functions={
            "amiguard-PublicGuardFunction-AbC123": FunctionState(exists=True, state="Active", reserved_concurrency=5)
        },
        trails=[
            TrailState(
                "management-events", "arn:aws:cloudtrail:us-east-1:123456789012:trail/management-events", True, True
            )
        ],
    )

    assert coverage_gaps(OWN, state) == []


def test_deployment_has_a_gap_when_only_another_trail_logs() -> None:
    state = DeploymentState(
        rules={},
        functions={},
        trails=[TrailState("team-scratch", "arn:aws:cloudtrail:us-east-1:123456789012:trail/team-scratch", True, True)],
    )

    [gap] = coverage_gaps(OWN, state)

    assert (gap.kind, gap.resource) == (ResourceKind.TRAIL, "management-events")


def test_an_unreadable_trail_is_unverified_not_stopped_when_no_other_trail_logs() -> None:
    state = DeploymentState(rules={}, functions={}, trails=[], unverified={"trail management-events": "AccessDenied"})

    [gap] = coverage_gaps(OWN, state)

    assert (gap.resource, gap.blind, gap.problem) == ("management-events", False, "could not be verified: AccessDenied")


def test_an_unreadable_trail_does_not_matter_when_amiguards_trail_logs() -> None:
    arn = "arn:aws:cloudtrail:us-east-1:123456789012:trail/management-events"
    state = DeploymentState(
        rules={},
        functions={},
        trails=[TrailState("management-events", arn, True, True)],
        unverified={"trail org-trail": "AccessDenied"},
    )

    assert coverage_gaps(OWN, state) == []
