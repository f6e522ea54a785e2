"""The test-side EventBridge matcher agrees with EventBridge on the constructs amiguard's rules use."""

from __future__ import annotations

import pytest

from .event_patterns import UnsupportedPatternError, matches

pytestmark = pytest.mark.infra

PATTERN = {
    "source": ["aws.ec2"],
    "detail": {"eventName": ["ModifyImageAttribute", "CreateImage"], "errorCode": [{"exists": False}]},
}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"source": "aws.ec2", "detail": {"eventName": "CreateImage"}}, True),
        ({"source": "aws.ec2", "detail": {"eventName": "CreateImage", "errorCode": "Client.X"}}, False),
        ({"source": "aws.ec2", "detail": {"eventName": "RunInstances"}}, False),
        ({"source": "aws.s3", "detail": {"eventName": "CreateImage"}}, False),
        ({"source": "aws.ec2"}, False),
        ({"source": "aws.ec2", "detail": "CreateImage"}, False),
    ],
)
def test_pattern_matches_like_eventbridge_when_fields_vary(event: dict[str, object], expected: bool) -> None:
    assert matches(PATTERN, event) is expected


def test_list_value_matches_when_any_element_matches() -> None:
    assert matches({"resources": ["b"]}, {"resources": ["a", "b"]})
    assert not matches({"resources": ["c"]}, {"resources": ["a", "b"]})


def test_exists_true_matches_when_field_present() -> None:
    assert matches({"errorCode": [{"exists": True}]}, {"errorCode": "AccessDenied"})
    assert not matches({"errorCode": [{"exists": True}]}, {})


@pytest.mark.parametrize("condition", [{"prefix": "ami-"}, {"anything-but": "x"}, {"numeric": [">", 1]}])
def test_matcher_refuses_operator_when_not_implemented(condition: dict[str, object]) -> None:
    with pytest.raises(UnsupportedPatternError):
        matches({"imageId": [condition]}, {"imageId": "ami-1"})
