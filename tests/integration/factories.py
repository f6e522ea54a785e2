"""Findings for tests: a realistic critical public-share, changed where a test says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from amiguard.models.findings import Action, Finding, FindingType, Severity


def a_finding(**changes: Any) -> Finding:
    values: dict[str, Any] = {
        "type": FindingType.PUBLIC_SHARE,
        "severity": Severity.CRITICAL,
        "summary": "AMI ami-0123456789abcdef0 was made public: anyone in any AWS account could launch it.",
        "account": "123456789012",
        "region": "us-east-1",
        "image_id": "ami-0123456789abcdef0",
        "image_name": "payments-api-2026-11",
        "actor": "arn:aws:iam::123456789012:user/dev-bob",
        "event_id": "1c5a3b2e-0000-4000-8000-000000000001",
        "event_time": datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        "action": Action.REVOKED,
        "evidence": {"grants": ["group:all"], "kept": []},
        "exposure_seconds": 2.4,
    }
    values.update(changes)
    return Finding(**values)
