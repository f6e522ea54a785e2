"""``--format html``: one self-contained page, as headless Chromium shows it (Debian's package)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from amiguard_cli.main import main
from amiguard_cli.report_html import render_html


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)", pytrace=False)
    return path


def _rendered_text(page: Path) -> str:
    """The page's text after Chromium rendered it (its DOM, tags stripped)."""
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return " ".join(re.sub(r"<[^>]+>", " ", result.stdout).split())


def test_scan_report_shows_counts_and_findings_grouped_by_severity_when_opened_in_a_browser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "report.html"
    # What the sandbox plants, counted from the same scan's JSON report
    main(["scan", "--sandbox", "--format", "json"])
    severities = Counter(f["severity"] for f in json.loads(capsys.readouterr().out)["findings"])
    critical, high = severities["critical"], severities["high"]

    code = main(["scan", "--sandbox", "--format", "html", "--output", str(page)])

    html = page.read_text(encoding="utf-8")
    shown = _rendered_text(page)
    assert code == 1 and critical and high
    assert re.search(rf"\b{critical} critical\b", shown) and re.search(rf"\b{high} high\b", shown)
    assert shown.index(f"critical ({critical})") < shown.index(f"high ({high})") < shown.index("medium (")
    assert "account 123456789012" in shown and "public-share" in shown
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the report loads an external asset"
    assert "<script" not in html.lower()


def test_backtest_report_is_one_page_listing_each_decision_when_written_as_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "trail.json"
    trail.write_text(
        '{"Records": [{"eventVersion": "1.08", "eventSource": "ec2.amazonaws.com", "eventName": '
        '"ModifyImageAttribute", "awsRegion": "us-east-1", "eventTime": "2026-11-01T10:00:00Z", '
        '"recipientAccountId": "123456789012", "requestParameters": {"imageId": "ami-0123456789abcdef0", '
        '"launchPermission": {"add": {"items": [{"group": "all"}]}}}}]}',
        encoding="utf-8",
    )
    page = tmp_path / "backtest.html"

    code = main(["backtest", "--file", str(trail), "--format", "html", "--output", str(page)])

    shown = _rendered_text(page)
    assert code == 1 and "critical (1)" in shown and "ami-0123456789abcdef0" in shown


def test_values_written_by_account_users_are_escaped_when_rendered() -> None:
    rows = [{"severity": "high", "account": "123456789012", "summary": '<img src=x onerror="alert(1)">'}]

    html = render_html("t", rows, ["summary"], summary="s")

    assert "<img" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
