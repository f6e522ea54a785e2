"""layers/amiguard/requirements.txt is generated from pyproject.toml and never drifts from it."""

from __future__ import annotations

import tomllib
from importlib.metadata import requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .sam_tools import REPO_ROOT, script

pytestmark = pytest.mark.infra


def _write_pyproject(directory: Path, dependencies: list[str]) -> Path:
    listed = ", ".join(f'"{dependency}"' for dependency in dependencies)
    pyproject = directory / "pyproject.toml"
    pyproject.write_text(f'[project]\nname = "x"\nversion = "0"\ndependencies = [{listed}]\n')
    return pyproject


def test_layer_requirements_match_pyproject_when_committed() -> None:
    generator = script("gen_layer_requirements")

    committed = (REPO_ROOT / "layers" / "amiguard" / "requirements.txt").read_text()

    assert committed == generator.render_requirements(), (
        "layers/amiguard/requirements.txt differs from pyproject.toml: run `make requirements` and commit it"
    )


def _runtime_pins() -> dict[str, str]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    return {(req := Requirement(line)).name: str(req.specifier).removeprefix("==") for line in dependencies}


def test_botocore_is_pinned_to_what_boto3_requires_and_the_tests_run_when_committed() -> None:
    # The trimmed models (amiguard/aws/service_models) are generated from one botocore: the layer must ship it.
    pins = _runtime_pins()
    boto3_needs = next(Requirement(r) for r in requires("boto3") or [] if Requirement(r).name == "botocore")

    assert "botocore" in pins, "pin botocore in pyproject.toml beside boto3"
    assert boto3_needs.specifier.contains(pins["botocore"]), f"boto3=={pins['boto3']} needs {boto3_needs}"
    assert {name: version(name) for name in ("boto3", "botocore")} == {
        name: pins[name] for name in ("boto3", "botocore")
    }


def test_generator_lists_each_exact_pin_sorted_when_dependencies_are_pinned(tmp_path: Path) -> None:
    pyproject = _write_pyproject(
        tmp_path, ["pydantic==2.1.0", "boto3 == 1.2.3", "aws-lambda-powertools[parser]==3.0.0"]
    )

    rendered = script("gen_layer_requirements").render_requirements(pyproject)

    requirements = [line for line in rendered.splitlines() if not line.startswith("#")]
    assert requirements == ["aws-lambda-powertools[parser]==3.0.0", "boto3==1.2.3", "pydantic==2.1.0"]


@pytest.mark.parametrize("dependency", ["boto3>=1.40", "boto3~=1.40.0", "boto3", "boto3==1.*", "boto3==1.40,<2"])
def test_generator_refuses_dependency_when_not_exactly_pinned(tmp_path: Path, dependency: str) -> None:
    generator = script("gen_layer_requirements")
    pyproject = _write_pyproject(tmp_path, ["pydantic==2.1.0", dependency])

    with pytest.raises(generator.NotPinnedError, match="not an exact pin"):
        generator.render_requirements(pyproject)
