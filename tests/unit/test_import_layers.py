"""The layering rules of docs/architecture.md, checked on the import graph (from the AST, lazy imports too)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import amiguard

PACKAGE = Path(amiguard.__file__).parent
# Which layer may import which: models are pure, policy sees only models, adapters (aws) see models, services
# join policy to ports; nothing in the runtime reaches the CLI, moto, rich or PyYAML.
ALLOWED = {
    "models": {"models"},
    "policy": {"models", "policy"},
    "aws": {"models", "aws", "policy"},
    "slack": {"models", "slack", "policy", "aws"},  # the webhook is an adapter at the edge
    "services": {"models", "policy", "services", "aws", "slack", "observability"},
}
FORBIDDEN_ANYWHERE = {"moto", "rich", "yaml", "amiguard_cli"}
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "service_models" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_runtime_module_imports_no_tooling_when_shipped_in_the_layer(path: Path) -> None:
    tops = {name.split(".")[0] for name in _imports(path)}
    assert not tops & FORBIDDEN_ANYWHERE, f"{path.name} imports {sorted(tops & FORBIDDEN_ANYWHERE)}"


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in ALLOWED],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_module_imports_only_the_layers_below_it_when_in_a_layer(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    reached = {
        name.split(".")[1]
        for name in _imports(path)
        if name.startswith("amiguard.") and name.count(".") >= 1
    }
    assert reached <= ALLOWED[layer], f"{layer}/{path.name} imports amiguard.{sorted(reached - ALLOWED[layer])}"


def test_architecture_doc_states_the_rules_this_test_enforces_when_documented() -> None:
    # docs/architecture.md's layer table: | `layer` | `a`, `b` | ... |
    rows = re.findall(r"^\| `(\w+)` \| ((?:`\w+`(?:, )?)+) \|", ARCHITECTURE.read_text(encoding="utf-8"), re.M)
    documented = {layer: set(re.findall(r"`(\w+)`", allowed)) for layer, allowed in rows}

    assert documented == ALLOWED, "keep docs/architecture.md's layer table and ALLOWED in step"
