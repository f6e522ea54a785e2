"""samconfig.toml's environments deploy with parameters the template accepts."""

from __future__ import annotations

import re
import shlex
import tomllib
from typing import Any

import pytest

from .sam_tools import REPO_ROOT

pytestmark = pytest.mark.infra

SAMCONFIG = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
ENVIRONMENTS = sorted(name for name, tables in SAMCONFIG.items() if isinstance(tables, dict) and "deploy" in tables)


def _overrides(environment: str) -> dict[str, str]:
    text = SAMCONFIG[environment]["deploy"]["parameters"].get("parameter_overrides", "")
    return dict(item.split("=", 1) for item in shlex.split(text))


def test_samconfig_defines_default_environment_when_deploying_without_flags() -> None:
    assert "default" in ENVIRONMENTS


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_overrides_only_valid_parameters_when_deployed(template: dict[str, Any], environment: str) -> None:
    parameters = template["Parameters"]

    for name, value in _overrides(environment).items():
        assert name in parameters, f"[{environment}] overrides unknown parameter {name}"
        allowed = parameters[name].get("AllowedValues")
        if allowed is not None:
            assert value in [str(v) for v in allowed], f"[{environment}] {name}={value} not in {allowed}"
        pattern = parameters[name].get("AllowedPattern")
        if pattern is not None:
            assert re.fullmatch(pattern, value), f"[{environment}] {name}={value} fails its AllowedPattern"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_grants_iam_capability_when_stack_creates_roles(environment: str) -> None:
    deploy = SAMCONFIG[environment]["deploy"]["parameters"]

    assert "CAPABILITY_IAM" in deploy.get("capabilities", "").split()
    assert deploy.get("resolve_s3") is True or deploy.get("s3_bucket")


def test_dev_audits_and_prod_enforces_in_stacks_of_their_own_when_deployed() -> None:
    stacks = {env: SAMCONFIG[env]["global"]["parameters"]["stack_name"] for env in ("dev", "prod")}

    assert stacks["dev"] != stacks["prod"]
    assert _overrides("dev")["Mode"] == "audit" and _overrides("prod")["Mode"] == "enforce"
    assert SAMCONFIG["default"]["global"]["parameters"]["stack_name"] == stacks["dev"]  # plain `sam deploy` is safe


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_names_its_region_and_tags_its_stack_when_deployed(environment: str) -> None:
    tables = SAMCONFIG[environment]
    region = tables["global"]["parameters"].get("region") or tables["deploy"]["parameters"].get("region")
    tags = dict(item.split("=", 1) for item in shlex.split(tables["deploy"]["parameters"].get("tags", "")))

    assert region and re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region)
    assert tags.get("project") == "amiguard" and tags.get("environment")
