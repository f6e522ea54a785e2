"""Findings for tests (a realistic critical public-share, changed where a test says) and in-memory records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from amiguard.models.findings import Action, Finding, FindingType, Severity
from amiguard.policy.tagging import ViolationRecord


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


class RecordedViolations:
    """amiguard's violation records in memory (what :class:`amiguard.aws.violations.DynamoViolations` stores)."""

    def __init__(self, records: dict[str, ViolationRecord] | None = None) -> None:
        self.rows: dict[tuple[str, str, str], ViolationRecord] = {}
        for image_id, record in (records or {}).items():
            self.rows[("123456789012", "us-east-1", image_id)] = record

    def records(self, account: str, region: str, image_ids: Sequence[str]) -> dict[str, ViolationRecord]:
        return {i: self.rows[(account, region, i)] for i in image_ids if (account, region, i) in self.rows}

    def in_region(self, account: str, region: str) -> dict[str, ViolationRecord]:
        return {key[2]: record for key, record in self.rows.items() if key[:2] == (account, region)}

    def record(self, account: str, region: str, image_id: str, violation: str, since: datetime) -> ViolationRecord:
        return self.rows.setdefault(
            (account, region, image_id), ViolationRecord(since.replace(microsecond=0), violation)
        )

    def update(self, account: str, region: str, image_id: str, violation: str) -> None:
        if (account, region, image_id) in self.rows:
            self.rows[(account, region, image_id)] = ViolationRecord(
                self.rows[(account, region, image_id)].since, violation
            )

    def clear(self, account: str, region: str, image_id: str) -> None:
        self.rows.pop((account, region, image_id), None)
