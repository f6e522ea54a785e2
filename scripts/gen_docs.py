"""Write the generated parts of docs/: docs/parameters.md from template.yaml's parameters and functions,
docs/findings.md from the finding catalogue (``amiguard.models.catalogue``).

Each parameter: its group (the template's parameter groups, as `sam deploy --guided` and the console show
them), default, allowed values, description, and the functions whose environment it reaches. `make docs`
rewrites them; a test fails when either drifts from its source.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "amiguard"), str(ROOT / "cli")]

from amiguard.models.catalogue import CATALOGUE  # noqa: E402
from amiguard_cli.sandbox.cfn import function_name, load_template, resources_of_type  # noqa: E402

PARAMETERS_MD = ROOT / "docs" / "parameters.md"
FINDINGS_MD = ROOT / "docs" / "findings.md"

FINDINGS_INTRO = """# Findings

<!-- Generated from the finding catalogue (layers/amiguard/amiguard/models/catalogue.py) by `make docs`
(scripts/gen_docs.py); a test fails when it drifts. -->

Every alert, ledger row, Security Hub finding and report line is one `Finding`
(`layers/amiguard/amiguard/models/findings.py`): `type`, `severity`, a one-sentence `summary`, the account, region,
AMI (id and name) or snapshot, the `actor` (the principal from the CloudTrail event), the event id and time, the
`action` taken, the `evidence`, and for remediations the exposure time. SNS messages carry `type`, `severity`,
`account` and `region` as message attributes, so subscribers can filter. What each type means comes from one
place, the finding catalogue (`amiguard.models.catalogue`): alerts, Slack, the ledger, Security Hub
([security-hub.md](security-hub.md)) and this page read it. A finding a reviewed exception covers is
recorded, not alerted ([exceptions.md](exceptions.md)).

Actions: `revoked` (`would-revoke` in audit mode), `tagged` (`would-tag`), `copied` (`would-copy`),
`deprecated`, `disabled`, `deregistered`, `none`.

Raised on: `event` (a function reacting to an event), `scan` (`amiguard scan`), `sweeper` (the daily sweep).
Remedy by: `amiguard` (in enforce mode), `human` (amiguard reports, a person decides), `none` (a record).
"""


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


def findings_markdown() -> str:
    """docs/findings.md: one row per catalogue entry, then each entry's ASFF types."""
    lines = [
        FINDINGS_INTRO,
        "| type | severity | title | raised by | raised on | what it means | remedy | by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in CATALOGUE.values():
        more = f" ([more]({entry.docs}))" if entry.docs else ""
        on = ", ".join(path.value for path in sorted(entry.raised_on))
        lines.append(
            f"| `{entry.type.value}` | {_cell(entry.severity_text)} | {_cell(entry.title)} "
            f"| {', '.join(entry.raised_by)} | {on} | {_cell(entry.meaning)} | {_cell(entry.remedy)}{more} "
            f"| {entry.remedied_by.value} |"
        )
    lines += [
        "",
        "## In Security Hub",
        "",
        "`GeneratorId` is `amiguard/<type>`; `Types` and `Compliance.Status` as raised:",
        "",
        "| type | ASFF `Types` | compliance | imported |",
        "|---|---|---|---|",
    ]
    for entry in CATALOGUE.values():
        types = "<br>".join(f"`{kind}`" for kind in entry.asff_types)
        closes = f"; closes {', '.join(f'`{kind.value}`' for kind in entry.closes)}" if entry.closes else ""
        imported = ("yes" if entry.security_hub else "no") + closes
        lines.append(f"| `{entry.type.value}` | {types} | {entry.compliance.value} | {imported} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    PARAMETERS_MD.parent.mkdir(exist_ok=True)
    FINDINGS_MD.write_text(findings_markdown(), encoding="utf-8")
    PARAMETERS_MD.write_text(parameters_markdown(load_template(ROOT / "template.yaml")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
