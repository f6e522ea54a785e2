"""The template passes SAM's own validation and cfn-lint, offline, with the pinned tools."""

from __future__ import annotations

import subprocess

import pytest

from .sam_tools import SamTools

pytestmark = pytest.mark.infra


def _assert_exit_zero(result: subprocess.CompletedProcess[str]) -> None:
    command = " ".join(str(arg) for arg in result.args)
    assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_sam_validate_accepts_template_when_run_offline(sam_tools: SamTools) -> None:
    _assert_exit_zero(sam_tools.run("sam", "validate", "--template-file", "template.yaml"))


def test_sam_validate_lint_finds_nothing_when_run_offline(sam_tools: SamTools) -> None:
    _assert_exit_zero(sam_tools.run("sam", "validate", "--lint", "--template-file", "template.yaml"))


def test_cfn_lint_finds_nothing_when_run_on_template(sam_tools: SamTools) -> None:
    _assert_exit_zero(sam_tools.run("cfn-lint", "template.yaml"))
