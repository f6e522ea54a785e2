"""Each function receives, from template.yaml, every setting its code reads.

What a function reads is found in its code: the AST of ``functions/<name>/app.py`` and of every amiguard
module it imports (transitively), for reads of a Settings field through a ``settings`` object
(``settings.dr_regions``, ``self._settings.mode``, ``context.settings.required_tags``), the fields a
Settings property reads (``settings.enforcing`` reads ``mode``) and the fields ``settings.require(...)``
names. Each field is one ``AMIGUARD_*`` variable; the function's deployed environment (Globals + its own
``Environment``) must carry it, bound to the same template parameter (or stack resource) everywhere.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from amiguard.models.settings import Settings, variable
from amiguard_cli.sandbox.cfn import Stack, deployed_environment, load_template, placeholder_stack, serverless_functions
from tests.samples import ROOT

pytestmark = pytest.mark.infra

LIBRARY = ROOT / "layers" / "amiguard"
SETTINGS_MODULE = LIBRARY / "amiguard" / "models" / "settings.py"
FIELDS = frozenset(Settings.model_fields)
# Parameters that configure the stack itself, not a setting the code reads.
INFRASTRUCTURE_PARAMETERS = frozenset({"SweepSchedule", "AlertEmail", "LogRetentionDays", "SweepConcurrency"})


def _module_path(name: str) -> Path | None:
    base = LIBRARY / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node outside ``if TYPE_CHECKING:`` blocks (type-only imports run no code)."""
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for statement in node.body
        for inner in ast.walk(statement)
    }
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "amiguard":
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}" for alias in node.names if _module_path(f"{node.module}.{alias.name}")
            )
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "amiguard")
    return found


@cache
def _property_fields() -> dict[str, frozenset[str]]:
    """Settings property -> the fields it reads (``enforcing`` -> ``mode``)."""
    tree = ast.parse(SETTINGS_MODULE.read_text())
    [settings] = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings"]
    properties = {}
    for node in settings.body:
        if isinstance(node, ast.FunctionDef) and any(
            isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list
        ):
            reads = {
                n.attr
                for n in ast.walk(node)
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
            }
            properties[node.name] = frozenset(reads & FIELDS)
    return properties


def fields_read(path: Path) -> set[str]:
    """Settings fields one module reads through a ``settings`` object, or names in ``settings.require``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and ast.unparse(node.value).lower().endswith("settings"):
            if node.attr in FIELDS:
                found.add(node.attr)
            found |= _property_fields().get(node.attr, frozenset())
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "require":
            found.update(arg.value for arg in node.args if isinstance(arg, ast.Constant) and arg.value in FIELDS)
    return found


def settings_read_by(function: str) -> dict[str, set[str]]:
    """Field -> the modules (relative paths) where ``function``'s code reads it."""
    app = ROOT / "functions" / function / "app.py"
    pending, seen, paths = list(_imports(app)), set(), [app]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        if (path := _module_path(module)) is not None and path != SETTINGS_MODULE:
            paths.append(path)
            pending.extend(_imports(path))
    reads: dict[str, set[str]] = {}
    for path in paths:
        for field in fields_read(path):
            reads.setdefault(field, set()).add(str(path.relative_to(ROOT)))
    return reads


@pytest.fixture(scope="module")
def stack(template: dict[str, Any]) -> Stack:
    """Every parameter set to a value naming it, every resource to its logical id: a value says its source."""
    return placeholder_stack(template, {name: f"<parameter {name}>" for name in template["Parameters"]})


def functions(template: dict[str, Any]) -> list[str]:
    return sorted(serverless_functions(template))


def test_reads_are_found_when_the_code_reads_settings() -> None:
    # The finder itself: reads known to exist are found (an empty result would make the next test vacuous).
    assert {"trusted_principals", "public_allowlist", "mode"} <= set(settings_read_by("public_guard"))
    assert {"dr_regions", "approval_tag", "ledger_table"} <= set(settings_read_by("dr_replicator"))
    assert "slack_webhook_secret" in settings_read_by("notifier")


@pytest.mark.parametrize("function", functions(load_template(ROOT / "template.yaml")))
def test_function_receives_every_setting_it_reads_when_deployed(
    template: dict[str, Any], stack: Stack, function: str
) -> None:
    environment = deployed_environment(template, function, stack)

    missing = {
        variable(field): sorted(where)
        for field, where in settings_read_by(function).items()
        if variable(field) not in environment
    }

    assert missing == {}, f"{function} reads these settings but template.yaml does not pass them (variable: code)"


def test_each_setting_comes_from_one_source_when_functions_receive_it(template: dict[str, Any], stack: Stack) -> None:
    receivers = [f for f in functions(template) if "AMIGUARD_OWN_FUNCTIONS" in _environment(template, f, stack)]
    sources: dict[str, set[str]] = {}
    for function in functions(template):
        for key, value in deployed_environment(template, function, stack).items():
            if key in _OWN_LISTS:
                # A function cannot name itself or its own rules in its environment (a circular dependency):
                # the lists are compared on what none of the functions receiving them owns.
                value = ",".join(sorted(item for item in value.split(",") if not _owned_by(item, receivers)))
            if key.startswith("AMIGUARD_"):
                sources.setdefault(key, set()).add(value)

    assert {key: values for key, values in sources.items() if len(values) > 1} == {}
    assert set(sources) <= {variable(field) for field in FIELDS}, "an AMIGUARD_ variable that is no setting"


_OWN_LISTS = frozenset({"AMIGUARD_OWN_FUNCTIONS", "AMIGUARD_OWN_RULES", "AMIGUARD_OWN_ROLES"})


def _environment(template: dict[str, Any], function: str, stack: Stack) -> dict[str, str]:
    return deployed_environment(template, function, stack)


def _owned_by(item: str, functions_: list[str]) -> bool:
    """Whether a resolved ``<resource X>``/``<attribute X.Arn>`` is one of these functions or their rules."""
    return any(f" {''.join(part.title() for part in name.split('_'))}Function" in item for name in functions_)


def test_every_parameter_reaches_a_setting_or_the_stack_when_declared(template: dict[str, Any], stack: Stack) -> None:
    received = {
        value
        for function in functions(template)
        for key, value in deployed_environment(template, function, stack).items()
        if key.startswith("AMIGUARD_")
    }

    unused = {name for name in template["Parameters"] if f"<parameter {name}>" not in received}

    assert unused == set(INFRASTRUCTURE_PARAMETERS), "a parameter no function receives (or a stack parameter to list)"
