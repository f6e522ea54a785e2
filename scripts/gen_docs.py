"""Write the generated parts of docs/: docs/parameters.md from template.yaml's parameters and functions.

Each parameter: its group (the template's parameter groups, as `sam deploy --guided` and the console show
them), default, allowed values, description, and the functions whose environment it reaches. `make docs`
rewrites it; a test fails when it drifts from the template.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "amiguard"), str(ROOT / "cli")]

from amiguard_cli.sandbox.cfn import function_name, load_template, resources_of_type  # noqa: E402

PARAMETERS_MD = ROOT / "docs" / "parameters.md"


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {str(value["Ref"])} if set(value) == {"Ref"} else set()
        return found.union(*(_refs(item) for item in value.values())) if value else found
    if isinstance(value, list):
        return set().union(*(_refs(item) for item in value)) if value else set()
    return set()


def _receivers(template: dict[str, Any]) -> dict[str, list[str]]:
    """Parameter -> functions whose environment references it (Globals reach every function)."""
    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    functions = resources_of_type(template, "AWS::Serverless::Function")
    names = sorted(function_name(str(f["Properties"].get("CodeUri", ""))) for f in functions.values())
    receivers: dict[str, set[str]] = {}
    for parameter in _refs(globals_env):
        receivers.setdefault(parameter, set()).update(names)
    for resource in functions.values():
        own = resource["Properties"].get("Environment", {}).get("Variables", {})
        for parameter in _refs(own):
            receivers.setdefault(parameter, set()).add(function_name(str(resource["Properties"].get("CodeUri", ""))))
    return {parameter: sorted(functions_) for parameter, functions_ in receivers.items()}


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def parameters_markdown(template: dict[str, Any]) -> str:
    parameters: dict[str, Any] = template.get("Parameters") or {}
    groups = template.get("Metadata", {}).get("AWS::CloudFormation::Interface", {}).get("ParameterGroups", [])
    grouped = [(g["Label"]["default"], list(g["Parameters"])) for g in groups]
    rest = [name for name in parameters if not any(name in members for _, members in grouped)]
    if rest:
        grouped.append(("Other", rest))
    receivers = _receivers(template)
    lines = [
        "# Parameters",
        "",
        "<!-- Generated from template.yaml by `make docs` (scripts/gen_docs.py); a test fails when it drifts. -->",
        "",
        "Set them with `sam deploy --parameter-overrides Name=value …` or in `samconfig.toml`. Each reaches the",
        "functions named (as an `AMIGUARD_*` variable); a bad value fails the deploy where the template can check",
        "it, and otherwise fails the function at start-up with an error naming the variable.",
        "",
    ]
    for label, members in grouped:
        lines += [f"## {label}", "", "| parameter | default | allowed | reaches | meaning |", "|---|---|---|---|---|"]
        for name in members:
            spec = parameters[name]
            default = spec.get("Default", "")
            allowed = ", ".join(str(v) for v in spec.get("AllowedValues", [])) or (
                "see pattern" if "AllowedPattern" in spec else ""
            )
            reaches = ", ".join(receivers.get(name, [])) or "the stack's resources"
            shown = f"`{default}`" if default != "" else "(empty)"
            lines.append(
                f"| `{name}` | {shown} | {_cell(allowed)} | {reaches} | {_cell(spec.get('Description', ''))} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    PARAMETERS_MD.parent.mkdir(exist_ok=True)
    PARAMETERS_MD.write_text(parameters_markdown(load_template(ROOT / "template.yaml")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
