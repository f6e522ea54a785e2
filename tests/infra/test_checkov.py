"""checkov: the templates, as written and as built, pass every check; each skip sits next to its resource with
its reason. checkov lives in its own venv (.venv-checkov, built by `make`): a missing venv is a failure."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import load_template

from .sam_tools import BUILD_DIR, REPO_ROOT

pytestmark = pytest.mark.infra

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
TEMPLATES = (
    REPO_ROOT / "template.yaml",
    REPO_ROOT / "region-forwarder.yaml",
    REPO_ROOT / "org" / "member-roles.yaml",
    REPO_ROOT / "org" / "member-forwarder.yaml",
)


def _skips(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        logical_id: resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
        for logical_id, resource in (template.get("Resources") or {}).items()
    }


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.name)
def test_every_checkov_skip_names_a_check_and_says_why_when_written(path: Path) -> None:
    for logical_id, skips in _skips(load_template(path)).items():
        for skip in skips:
            assert str(skip.get("id", "")).startswith("CKV_"), f"{logical_id}: {skip}"
            reason = str(skip.get("comment", ""))
            assert len(reason.split()) >= 5, f"{logical_id} skips {skip.get('id')} without a reason"


def test_templates_pass_checkov_when_written_and_built() -> None:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make test` (or `make checkov`) first", pytrace=False)
    if not (BUILD_DIR / "template.yaml").exists():
        pytest.fail(f"{BUILD_DIR} holds no build: run `make build` (or `make test`) first", pytrace=False)
    files = [*TEMPLATES, BUILD_DIR / "template.yaml"]
    result = subprocess.run(
        [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--quiet", "-o", "json"]
        + [arg for path in files for arg in ("-f", str(path))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.stdout.strip(), f"checkov printed no report (exit {result.returncode}):\n{result.stderr[-2000:]}"
    reports = json.loads(result.stdout)
    failed = [
        f"{check['check_id']} {check['resource']} ({Path(check['file_path']).name})"
        for report in (reports if isinstance(reports, list) else [reports])
        for check in report.get("results", {}).get("failed_checks", [])
    ]

    assert failed == [], "fix, or skip inline with a reason (Metadata: checkov: skip:):\n" + "\n".join(failed)
    assert result.returncode == 0, result.stderr[-2000:]
