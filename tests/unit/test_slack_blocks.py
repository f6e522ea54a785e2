"""Block Kit rendering: one glance, every Slack limit respected, whatever the finding holds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from amiguard.models.findings import Action, FindingType
from amiguard.slack.blocks import (
    FIELD_LIMIT,
    HEADER_LIMIT,
    MAX_BLOCKS,
    MAX_FIELDS,
    SECTION_LIMIT,
    console_url,
    finding_blocks,
    format_duration,
)
from tests.factories import a_finding


def _texts(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def _check_limits(payload: dict[str, Any]) -> None:
    blocks = payload["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_LIMIT
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= SECTION_LIMIT
            fields = block.get("fields", [])
            assert len(fields) <= MAX_FIELDS
            assert all(len(field["text"]) <= FIELD_LIMIT for field in fields)


def test_message_says_severity_what_where_who_and_action_when_ami_made_public() -> None:
    payload = finding_blocks(a_finding())
    text = _texts(payload)

    assert payload["blocks"][0]["text"]["text"].startswith("\U0001f534 Critical")
    for expected in (
        "was made public",
        "ami-0123456789abcdef0",
        "payments-api-2026-11",
        "123456789012",
        "us-east-1",
        "user/dev-bob",
        "revoked",
        "2.4 s",
        "#ImageDetails:imageId=ami-0123456789abcdef0",
        "group:all",
    ):
        assert expected in text, expected
    assert payload["text"].startswith("\U0001f534 CRITICAL public-share:")


def test_blocks_stay_within_slack_limits_when_evidence_list_is_10_kb() -> None:
    principals = [f"{index:012d}" for index in range(800)]  # 800 account ids: ~10 KB as JSON
    finding = a_finding(type=FindingType.UNTRUSTED_SHARE, evidence={"untrusted_principals": principals})
    assert len(json.dumps(finding.evidence)) > 10_000

    payload = finding_blocks(finding)

    _check_limits(payload)
    sections = [block["text"]["text"] for block in payload["blocks"] if block["type"] == "section" and "text" in block]
    evidence = next(text for text in sections if text.startswith("*Evidence*"))
    assert "(800)" in evidence and "`000000000000`" in evidence
    shown = evidence.count("`") // 2
    assert f"and {800 - shown} more" in evidence
    assert "not shown" in evidence


def test_every_key_is_named_when_evidence_has_many_long_values() -> None:
    evidence = {f"key{index}": "x" * 5000 for index in range(20)}

    payload = finding_blocks(a_finding(evidence=evidence))

    _check_limits(payload)


def test_unicode_name_is_kept_whole_when_image_name_is_not_ascii() -> None:
    name = "Zahlungs-API \u2013 \u00fcbersetzt \u65e5\u672c\u8a9e \U0001f680"

    payload = finding_blocks(a_finding(image_name=name))

    assert name in _texts(payload)
    _check_limits(payload)


def test_mentions_are_neutralised_when_name_or_actor_hold_slack_control_characters() -> None:
    payload = finding_blocks(a_finding(image_name="<!channel> & <https://evil.example|click>", actor="<@U123>"))
    text = _texts(payload)

    assert "<!channel>" not in text and "<@U123>" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text


def test_exposure_is_left_out_when_unknown() -> None:
    payload = finding_blocks(a_finding(exposure_seconds=None, action=Action.WOULD_REVOKE))
    text = _texts(payload)

    assert "Exposed for" not in text
    assert "would revoke (audit mode" in text


@pytest.mark.parametrize(
    ("region", "changes", "expected"),
    [
        ("eu-west-1", {}, "https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1#ImageDetails:imageId="),
        ("us-gov-west-1", {}, "https://console.amazonaws-us-gov.com/ec2/home?region=us-gov-west-1#ImageDetails:"),
        ("cn-north-1", {}, "https://console.amazonaws.cn/ec2/home?region=cn-north-1#ImageDetails:"),
        ("us-east-1", {"image_id": None, "snapshot_id": "snap-0123456789abcdef0"}, "#SnapshotDetails:snapshotId=snap-"),
        ("us-east-1", {"image_id": None}, "#Settings:tab=dataProtectionAndSecurity"),
    ],
)
def test_console_link_opens_the_resource_when_region_and_partition_vary(
    region: str, changes: dict[str, Any], expected: str
) -> None:
    assert expected in console_url(a_finding(region=region, **changes))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(2.44, "2.4 s"), (42, "42 s"), (192, "3 min 12 s"), (7500, "2 h 5 min"), (3 * 86400 + 4 * 3600, "3 d 4 h")],
)
def test_duration_reads_naturally_when_exposure_is_formatted(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_account_is_named_then_numbered_when_the_finding_carries_its_organization_name() -> None:
    payload = finding_blocks(a_finding(account="444455556666", account_name="prod"))
    fields = [field["text"] for block in payload["blocks"] for field in block.get("fields", [])]

    assert "*Account*\nprod (444455556666)" in fields
