"""layers/amiguard/requirements.txt is generated from pyproject.toml and never drifts from it."""

from __future__ import annotations

from pathlib import Path

import pytest

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
