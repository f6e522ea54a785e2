"""docs/ says what the code and template do: generated parts match, every finding type is documented."""

from __future__ import annotations

from typing import Any

from amiguard.models.findings import FindingType

from . import sam_tools
from .sam_tools import REPO_ROOT

DOCS = REPO_ROOT / "docs"


def test_parameters_doc_matches_the_template_when_generated(template: dict[str, Any]) -> None:
    generator = sam_tools.script("gen_docs")

    assert (DOCS / "parameters.md").read_text(encoding="utf-8") == generator.parameters_markdown(template), (
        "docs/parameters.md is stale: run `make docs`"
    )


def test_every_template_parameter_is_documented_when_deployed(template: dict[str, Any]) -> None:
    text = (DOCS / "parameters.md").read_text(encoding="utf-8")

    assert not [name for name in template["Parameters"] if f"`{name}`" not in text]


def test_every_finding_type_is_documented_when_raised() -> None:
    text = (DOCS / "findings.md").read_text(encoding="utf-8")

    assert not [kind.value for kind in FindingType if f"`{kind.value}`" not in text]


def test_every_doc_link_in_the_readme_and_docs_points_at_a_file_when_followed() -> None:
    import re

    broken = []
    for page in [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not (page.parent / target).exists():
                broken.append(f"{page.name} -> {target}")
    assert not broken, broken


def test_findings_doc_matches_the_catalogue_when_generated() -> None:
    generator = sam_tools.script("gen_docs")

    assert (DOCS / "findings.md").read_text(encoding="utf-8") == generator.findings_markdown(), (
        "docs/findings.md is stale: run `make docs`"
    )
