"""Whoever may invoke a function directly can send any JSON: each function drops what is no event, with a
logged reason and a metric, and never crashes (no AttributeError, no RecursionError, nothing retried)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Delivery, Sandbox
from tests.samples import load_sample

FUNCTIONS = ["public_guard", "tag_enforcer", "dr_replicator", "sweeper", "notifier"]
NOT_OBJECTS: list[Any] = [[], [{"detail-type": "Scheduled Event"}], None, "ModifyImageAttribute", 42, 1.5, True]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(parameters={"Mode": "enforce"}) as sb:
        yield sb


def _nested(depth: int, leaf: Any) -> Any:
    node = leaf
    for level in range(depth):
        node = {"items": [node]} if level % 2 else {"add": node}
    return node


def deep_event(depth: int = 5000) -> dict[str, Any]:
    """A ModifyImageAttribute event whose launchPermission nests ``depth`` levels: legal JSON, not CloudTrail."""
    event = load_sample("cloudtrail-raw-modifyimageattribute-add-group-all-panther.json")
    event["detail"]["awsRegion"] = "us-east-1"
    event["detail"]["recipientAccountId"] = "123456789012"
    event["detail"]["requestParameters"] = {
        "imageId": "ami-0123456789abcdef0",
        "launchPermission": _nested(depth, {"group": "all"}),
    }
    return event


def _dropped_with_reason(delivery: Delivery, reason: str) -> None:
    assert delivery.error is None
    assert delivery.result is not None
    assert (delivery.result["status"], delivery.result["reason"]) == ("dropped", reason)
    metrics = [json.loads(line) for line in delivery.output.splitlines() if '"EventsDropped"' in line]
    assert [(m["function"], m["reason"]) for m in metrics] == [(delivery.function, reason)]


@pytest.mark.parametrize("payload", NOT_OBJECTS, ids=lambda p: type(p).__name__ + str(len(json.dumps(p))))
@pytest.mark.parametrize("function", FUNCTIONS)
def test_payload_is_dropped_as_malformed_when_it_is_not_a_json_object(sandbox: Sandbox, function: str, payload: Any):
    delivery = sandbox.invoke(function, payload)

    _dropped_with_reason(delivery, "malformed-event")
    assert "not a JSON object" in delivery.result["detail"]  # type: ignore[index]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_payload_is_dropped_as_malformed_when_it_nests_deeper_than_aws_ever_does(sandbox: Sandbox, function: str):
    delivery = sandbox.invoke(function, deep_event())

    _dropped_with_reason(delivery, "malformed-event")
    assert "nests deeper" in delivery.result["detail"]  # type: ignore[index]


def test_real_events_are_not_too_deep_when_recorded_by_cloudtrail(sandbox: Sandbox):
    event = load_sample("cloudtrail-raw-modifyimageattribute-add-group-all-panther.json")

    delivery = sandbox.invoke("public_guard", event)

    assert delivery.error is None
    assert delivery.result is not None and "nests deeper" not in delivery.result["detail"]
