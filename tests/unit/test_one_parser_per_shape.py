"""One parser per event shape: each EventBridge event model is validated in one place, ``policy/screening.py``
(the handlers, the backtest and the sandbox all call its ``read_*`` functions), and the SNS record in one, the
notifier. Found from the code's AST, so a second parser anywhere in the runtime or the CLI fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.samples import ROOT

SOURCES = [ROOT / "layers" / "amiguard" / "amiguard", ROOT / "cli" / "amiguard_cli", ROOT / "functions"]
# model -> the one module allowed to validate it
PARSERS = {
    "CloudTrailEvent": "layers/amiguard/amiguard/policy/screening.py",
    "CloudTrailServiceEvent": "layers/amiguard/amiguard/policy/screening.py",
    "AmiStateChangeEvent": "layers/amiguard/amiguard/policy/screening.py",
    "ScheduledEvent": "layers/amiguard/amiguard/policy/screening.py",
    "SnsEvent": "layers/amiguard/amiguard/services/notifier.py",
}


def _validations(root: Path = ROOT) -> dict[str, set[str]]:
    """model name -> the modules that call ``<model>.model_validate*`` or ``_parsed(<model>, ...)``."""
    found: dict[str, set[str]] = {name: set() for name in PARSERS}
    for path in sorted(p for source in SOURCES for p in (root / source.relative_to(ROOT)).rglob("*.py")):
        module = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            function, model = node.func, None
            if isinstance(function, ast.Attribute) and function.attr.startswith("model_validate"):
                model = function.value
            elif isinstance(function, ast.Name) and function.id == "_parsed" and node.args:
                model = node.args[0]
            if isinstance(model, ast.Name) and model.id in found:
                found[model.id].add(module)
    return found


@pytest.mark.parametrize("model", sorted(PARSERS))
def test_each_event_shape_is_parsed_in_one_module_when_the_code_is_read(model: str) -> None:
    # Given / When: every module that turns a payload into this model
    modules = _validations()[model]
    # Then: exactly the one parser
    assert modules == {PARSERS[model]}
