"""Fixtures for the template and build checks.

The SAM tools live in their own venv (.venv-sam, built by `make`), never in the project's: these tests call
its binaries by path. A missing venv or build is a failure naming the command that fixes it, never a skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import load_template

from .sam_tools import BUILD_DIR, TEMPLATE, SamTools


@pytest.fixture(scope="session")
def sam_tools() -> SamTools:
    tools = SamTools()
    if missing := tools.missing():
        pytest.fail(
            f"{tools.bin_dir} lacks {', '.join(missing)}: run `make venv` (or `make test`) first", pytrace=False
        )
    return tools


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml as written (SAM resources; short-form tags turned into their long form)."""
    return load_template(TEMPLATE)


@pytest.fixture(scope="session")
def deployed_template(sam_tools: SamTools) -> dict[str, Any]:
    """template.yaml after the SAM transform: the CloudFormation resources a deploy would create."""
    result = sam_tools.run("python", str(Path(__file__).with_name("sam_transform.py")), str(TEMPLATE))
    if result.returncode != 0:
        pytest.fail(f"SAM transform of template.yaml failed:\n{result.stderr}", pytrace=False)
    transformed: dict[str, Any] = json.loads(result.stdout)
    return transformed


@pytest.fixture(scope="session")
def build_dir() -> Path:
    """`sam build`'s output directory."""
    if not (BUILD_DIR / "template.yaml").exists():
        pytest.fail(f"{BUILD_DIR} holds no build: run `make build` (or `make test`) first", pytrace=False)
    return BUILD_DIR
