"""env.json (for ``sam local invoke --env-vars``) covers every setting each function is deployed with, valid."""

from __future__ import annotations

import json
from typing import Any

import pytest

from amiguard.models.settings import Settings, SettingsError, load_settings
from amiguard_cli.sandbox.cfn import deployed_environment, function_name, placeholder_stack, resources_of_type

from .sam_tools import REPO_ROOT

pytestmark = pytest.mark.infra
ENV_JSON = json.loads((REPO_ROOT / "env.json").read_text(encoding="utf-8"))


def _functions(template: dict[str, Any]) -> dict[str, str]:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    return {logical_id: function_name(r["Properties"]["CodeUri"]) for logical_id, r in functions.items()}


def test_env_json_names_every_function_of_the_template_when_invoked_locally(template: dict[str, Any]) -> None:
    assert set(ENV_JSON) == set(_functions(template))


def test_env_json_sets_every_variable_the_template_gives_each_function_when_invoked_locally(
    template: dict[str, Any],
) -> None:
    stack = placeholder_stack(template, {})
    for logical_id, name in _functions(template).items():
        deployed = deployed_environment(template, name, stack)
        missing = sorted(set(deployed) - set(ENV_JSON.get(logical_id, {})))
        assert not missing, f"env.json[{logical_id}] lacks {missing}: run `make env-json`"


def test_env_json_values_pass_each_functions_settings_when_invoked_locally(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for logical_id in _functions(template):
        for key in [key for key in __import__("os").environ if key.startswith("AMIGUARD_")]:
            monkeypatch.delenv(key)
        for key, value in ENV_JSON[logical_id].items():
            monkeypatch.setenv(key, value)
        try:
            settings = load_settings()
        except SettingsError as error:
            pytest.fail(f"env.json[{logical_id}]: {error}")
        assert isinstance(settings, Settings)
