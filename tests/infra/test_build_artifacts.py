"""What `sam build` produced: an arm64/cp313 layer holding amiguard and its pins, and handler-only functions."""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path
from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import load_template, resources_of_type

from .sam_tools import REPO_ROOT

pytestmark = pytest.mark.infra

EM_AARCH64 = 183  # ELF e_machine of arm64 (EM_X86_64 is 62)
PYTHON_313_MAGIC = (3571).to_bytes(2, "little") + b"\r\n"  # importlib.util.MAGIC_NUMBER of every CPython 3.13
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;]+)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    byteorder = "little" if header[5] == 1 else "big"
    return int.from_bytes(header[18:20], byteorder)


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _built_template(build_dir: Path) -> dict[str, Any]:
    return load_template(build_dir / "template.yaml")


def _layer_python_dir(build_dir: Path) -> Path:
    layers = resources_of_type(_built_template(build_dir), "AWS::Serverless::LayerVersion")
    assert "AmiguardLayer" in layers, "the built template has no AmiguardLayer"
    return build_dir / layers["AmiguardLayer"]["Properties"]["ContentUri"] / "python"


def _layer_distributions(python_dir: Path) -> dict[str, str]:
    """Normalised name -> version of every distribution installed in the layer."""
    found = {}
    for dist_info in python_dir.glob("*.dist-info"):
        metadata = importlib.metadata.PathDistribution(dist_info).metadata
        found[_normalise(metadata["Name"])] = metadata["Version"]
    return found


def test_layer_ships_amiguard_package_when_built(build_dir: Path) -> None:
    assert (_layer_python_dir(build_dir) / "amiguard" / "__init__.py").is_file()


def test_layer_ships_aarch64_cp313_pydantic_core_when_built_on_any_host(build_dir: Path) -> None:
    extensions = list((_layer_python_dir(build_dir) / "pydantic_core").glob("*.so"))

    assert extensions, "the layer has no pydantic_core extension module"
    for extension in extensions:
        assert "cpython-313-aarch64-linux-gnu" in extension.name, f"{extension.name} is not a cp313 arm64 build"
        assert _elf_machine(extension) == EM_AARCH64, f"{extension.name} is not an aarch64 ELF"


def test_layer_holds_no_foreign_architecture_binary_when_built(build_dir: Path) -> None:
    python_dir = _layer_python_dir(build_dir)
    foreign = [
        str(binary.relative_to(python_dir))
        for binary in python_dir.rglob("*.so*")
        if binary.is_file() and _elf_machine(binary) != EM_AARCH64
    ]
    assert foreign == [], f"binaries the arm64 runtime cannot load: {foreign}"


def test_layer_installs_every_pinned_requirement_when_built(build_dir: Path) -> None:
    pins = {
        _normalise(match["name"]): match["version"]
        for line in (REPO_ROOT / "layers" / "amiguard" / "requirements.txt").read_text().splitlines()
        if (match := PIN.match(line.strip()))
    }
    installed = _layer_distributions(_layer_python_dir(build_dir))

    assert pins, "layers/amiguard/requirements.txt pins nothing"
    assert {name: installed.get(name) for name in pins} == pins


def test_layer_ships_the_versions_the_tests_run_against_when_built(build_dir: Path) -> None:
    # Transitive dependencies are resolved at build time (botocore for boto3, pydantic-core for pydantic):
    # they must be the releases this test run imports, or the tests prove nothing about what ships.
    shipped = _layer_distributions(_layer_python_dir(build_dir))
    tested = {name: _installed_version(name) for name in shipped}

    assert shipped == tested


def test_layer_ships_bytecode_valid_without_source_check_when_built(build_dir: Path) -> None:
    package = _layer_python_dir(build_dir) / "amiguard"
    bytecode = package / "__pycache__" / "__init__.cpython-313.pyc"

    assert bytecode.is_file(), "the layer's amiguard package was not precompiled (make build runs compileall)"
    header = bytecode.read_bytes()[:8]
    assert header[:4] == PYTHON_313_MAGIC, "the layer's bytecode is not for the python3.13 runtime"
    # PEP 552 flags: bit 0 = hash-based, bit 1 = check source. /opt is read-only: never recompile there.
    assert int.from_bytes(header[4:8], "little") == 0b01


def test_function_artifact_holds_only_its_handler_when_built(build_dir: Path) -> None:
    functions = resources_of_type(_built_template(build_dir), "AWS::Serverless::Function")
    assert functions, "the built template has no function"

    for logical_id, function in functions.items():
        artifact = build_dir / function["Properties"]["CodeUri"]
        entries = {entry.name for entry in artifact.iterdir()} - {"__pycache__"}
        assert "app.py" in entries, f"{logical_id}: no app.py in {artifact}"
        dependencies = sorted(entry for entry in entries if (artifact / entry).is_dir() or entry.endswith(".dist-info"))
        assert dependencies == [], f"{logical_id} bundles packages that belong in the layer: {dependencies}"


def test_layer_ships_the_models_the_functions_aws_data_path_names_when_built(build_dir: Path) -> None:
    from amiguard.aws.service_models import OPERATIONS
    from amiguard_cli.sandbox.cfn import LAYER_MOUNT, function_environment

    data_path = function_environment(_built_template(build_dir))["AWS_DATA_PATH"]
    assert data_path.startswith(LAYER_MOUNT + "/"), f"AWS_DATA_PATH {data_path} is not inside the layer"
    shipped = _layer_python_dir(build_dir) / data_path.removeprefix(LAYER_MOUNT + "/")

    assert sorted(path.parts[-3] for path in shipped.glob("*/*/service-2.json")) == sorted(OPERATIONS)
    assert (shipped / "endpoints.json").is_file()


TOOLING_ONLY = ("moto", "rich", "yaml", "amiguard_cli")  # the `cli` extra and the package it installs


def _top_level_imports(source: str) -> set[str]:
    """The top-level package of every import statement in ``source`` (found from the AST, lazy ones too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_layer_holds_no_module_importing_the_tooling_when_built(build_dir: Path) -> None:
    package = _layer_python_dir(build_dir) / "amiguard"
    offenders = {
        str(path.relative_to(package)): sorted(_top_level_imports(path.read_text(encoding="utf-8")) & set(TOOLING_ONLY))
        for path in package.rglob("*.py")
    }
    offenders = {path: names for path, names in offenders.items() if names}
    assert list(package.rglob("*.py")), "the built layer holds no amiguard source"
    assert not offenders, f"the layer ships modules that import CLI-only packages: {offenders}"
    assert not (_layer_python_dir(build_dir) / "amiguard_cli").exists(), "the layer ships the CLI package"
