"""Whatever an alert holds reaches Slack inert: every field escaped (no <!channel>, no forged link), every URL
built from AWS-shaped values and bounded, and no non-finite number rendered or even accepted."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from amiguard.models.findings import Finding
from amiguard.slack.blocks import GENERIC_CONSOLE_URL, URL_LIMIT, console_url, finding_blocks, format_duration
from tests.factories import a_finding

PING = "<!channel>"
FORGED_LINK = "<https://evil.example/login|Open in the EC2 console>"
HOSTILE = f"{PING} {FORGED_LINK} <@U012AB3CD> & more"


def _all_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def _urls(payload: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "url":
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(payload)
    return found


@pytest.mark.parametrize(
    "field", ["account", "region", "image_id", "snapshot_id", "image_name", "actor", "event_id", "summary"]
)
def test_control_sequences_arrive_escaped_when_any_field_carries_them(field: str) -> None:
    payload = finding_blocks(a_finding(**{field: HOSTILE}))

    text = _all_text(payload)
    assert PING not in text and "<@U012AB3CD>" not in text and "<https://evil.example" not in text
    assert "&lt;!channel&gt;" in text


def test_fallback_text_is_escaped_when_the_summary_names_a_hostile_ami() -> None:
    payload = finding_blocks(a_finding(summary=f"AMI ami-0123456789abcdef0 ({PING}) lacks required tags Owner."))

    assert PING not in payload["text"] and "&lt;!channel&gt;" in payload["text"]


@pytest.mark.parametrize(
    "changes",
    [
        {"region": "us-east-1.evil.example/x?"},
        {"region": "a" * 5000},
        {"image_id": "ami-0123456789abcdef0#@evil.example"},
        {"image_id": "x" * 5000, "snapshot_id": "snap-" + "0" * 5000},
    ],
)
def test_every_url_stays_on_the_aws_console_and_bounded_when_fields_are_hostile(changes: dict[str, str]) -> None:
    finding = a_finding(**changes)
    payload = finding_blocks(finding)

    for url in [console_url(finding), *_urls(payload)]:
        assert len(url) <= URL_LIMIT
        assert url.startswith(("https://console.aws.amazon.com/", "https://us-east-1.console.aws.amazon.com/"))
        assert "evil" not in url


def test_console_url_is_the_generic_one_when_the_region_is_not_a_region_name() -> None:
    assert console_url(a_finding(region="<!here>")) == GENERIC_CONSOLE_URL


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1.0])
def test_finding_is_refused_when_its_exposure_is_not_a_finite_duration(value: float) -> None:
    with pytest.raises(ValidationError):
        a_finding(exposure_seconds=value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_alert_json_is_refused_when_it_carries_a_non_finite_exposure(literal: str) -> None:
    message = a_finding().model_dump_json().replace('"exposure_seconds":2.4', f'"exposure_seconds":{literal}')

    with pytest.raises(ValidationError):
        Finding.model_validate_json(message)


@pytest.mark.parametrize("value", [math.nan, math.inf, -5.0])
def test_duration_is_unknown_when_it_is_not_finite(value: float) -> None:
    assert format_duration(value) == "unknown"
