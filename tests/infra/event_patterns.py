"""EventBridge event-pattern matching, for the coarse patterns amiguard's rules use.

Supports what amiguard's rules may contain (DESIGN.md: source, detail-type, eventName, errorCode): nested
objects, lists of exact values, and ``{"exists": bool}``. Any other operator (prefix, anything-but, numeric,
...) raises ``UnsupportedPatternError``, so a rule that outgrows this matcher fails its tests loudly instead of
being judged by rules EventBridge does not apply.
"""

from __future__ import annotations

from typing import Any


class UnsupportedPatternError(ValueError):
    """The pattern uses an EventBridge feature this matcher does not implement."""


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether EventBridge would deliver ``event`` to a rule with ``pattern``."""
    for key, condition in pattern.items():
        present = key in event
        value = event.get(key)
        if isinstance(condition, dict):
            if not isinstance(value, dict) or not matches(condition, value):
                return False
        elif isinstance(condition, list):
            if not _matches_any(condition, present, value):
                return False
        else:
            raise UnsupportedPatternError(f"{key}: a pattern value must be an object or a list, not {condition!r}")
    return True


def _matches_any(conditions: list[Any], present: bool, value: Any) -> bool:
    # An array in the event matches when any of its elements does.
    candidates = value if isinstance(value, list) else [value]
    for condition in conditions:
        if isinstance(condition, dict):
            if set(condition) != {"exists"} or not isinstance(condition["exists"], bool):
                raise UnsupportedPatternError(f"unsupported content filter {condition!r}")
            if condition["exists"] == present:
                return True
        elif isinstance(condition, list):
            raise UnsupportedPatternError(f"nested list {condition!r}")
        elif present and any(
            not isinstance(candidate, (dict, list)) and candidate == condition for candidate in candidates
        ):
            return True
    return False


def cloudtrail_event(record: dict[str, Any]) -> dict[str, Any]:
    """The EventBridge event AWS emits for a CloudTrail ``record`` of an EC2 API call."""
    return {
        "version": "0",
        "id": record.get("eventID", "00000000-0000-0000-0000-000000000000"),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": record.get("recipientAccountId", "123456789012"),
        "time": record.get("eventTime", "2024-01-01T00:00:00Z"),
        "region": record.get("awsRegion", "us-east-1"),
        "resources": [],
        "detail": record,
    }
