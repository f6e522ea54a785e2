"""``amiguard scan --sandbox``, tried as a new user would: no AWS account, every planted problem reported with
exit 1, and ``--fix`` clears all that a machine can (a missing Owner needs a human; it is marked)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from amiguard_cli import main as cli
from amiguard_cli.sandbox import scan as sandbox_scan
from amiguard_cli.sandbox.estate import Estate


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> list[Estate]:
    estates: list[Estate] = []
    original = sandbox_scan.plant

    def keep(session: Any) -> Estate:
        estates.append(original(session))
        return estates[-1]

    monkeypatch.setattr(sandbox_scan, "plant", keep)
    return estates


def found(report: dict[str, Any], kind: str) -> set[tuple[str, str]]:
    key = "snapshot_id" if kind == "public-snapshot" else "image_id"
    return {(f["region"], f[key]) for f in report["findings"] if f["type"] == kind}


def test_sandbox_scan_reports_every_planted_problem_and_exits_1_when_run_without_an_aws_account(
    planted: list[Estate], capsys: pytest.CaptureFixture[str]
) -> None:
    # When
    code = cli.main(["scan", "--sandbox", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    # Then
    [estate] = planted
    assert code == 1
    assert found(report, "public-share") == estate.public
    assert found(report, "untrusted-share") == estate.untrusted
    assert found(report, "public-snapshot") == estate.public_snapshots
    assert found(report, "missing-tags") == estate.missing_tag
    assert found(report, "not-replicated") == estate.not_replicated
    assert found(report, "replica-cleanup") == estate.orphaned_replicas
    assert {f["region"] for f in report["findings"] if f["type"] == "block-public-access-disabled"} == (
        estate.block_public_access_off
    )
    assert found(report, "unencrypted-ami") == estate.unencrypted
    assert found(report, "ami-legacy-platform") == estate.legacy_platform
    assert found(report, "ami-stale") == estate.stale
    assert found(report, "ami-unused") == estate.unused
    assert {f["region"] for f in report["findings"] if f["type"] == "snapshot-block-public-access-disabled"} == (
        estate.snapshot_block_public_access_off
    )
    assert len(report["findings"]) == sum(
        len(kind)
        for kind in (
            estate.public,
            estate.untrusted,
            estate.public_snapshots,
            estate.missing_tag,
            estate.not_replicated,
            estate.orphaned_replicas,
            estate.block_public_access_off,
            estate.unencrypted,
            estate.legacy_platform,
            estate.stale,
            estate.unused,
            estate.snapshot_block_public_access_off,
        )
    )
    assert report["errors"] == []


def test_sandbox_fix_clears_every_problem_but_the_missing_tags_it_marks_when_fix_is_given(
    planted: list[Estate], capsys: pytest.CaptureFixture[str]
) -> None:
    # When
    code = cli.main(["scan", "--sandbox", "--fix", "--format", "json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    # Then every finding was acted on, and the scan after it finds only what needs a human
    assert code == 1
    assert {f["type"]: f["action"] for f in report["findings"]} == {
        "public-share": "revoked",
        "untrusted-share": "revoked",
        "public-snapshot": "revoked",
        "block-public-access-disabled": "revoked",
        "missing-tags": "tagged",
        "not-replicated": "copied",
        "replica-cleanup": "deprecated",
        "snapshot-block-public-access-disabled": "revoked",
        "ami-stale": "deprecated",
        "ami-unused": "deprecated",
        "unencrypted-ami": "none",
        "ami-legacy-platform": "none",
    }
    after = captured.err.strip().splitlines()[-1]
    assert after.startswith("after --fix, scanned again:")
    assert f"{len(planted[0].missing_tag)} missing-tags, 1 unencrypted-ami (exit 1)" in after
    assert after.endswith("left for a human: ami-legacy-platform, missing-tags, unencrypted-ami")
