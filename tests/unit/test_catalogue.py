"""The finding catalogue: one entry per finding type, each complete, read by Slack and the docs."""

from __future__ import annotations

import pytest

from amiguard.models.catalogue import CATALOGUE, Compliance, RaisedOn, entry_for, is_closed
from amiguard.models.findings import Action, Finding, FindingType, Severity
from amiguard.slack.blocks import finding_blocks

# ASFF's own namespaces (https://docs.aws.amazon.com/securityhub/latest/userguide/asff-type-taxonomy.html).
ASFF_NAMESPACES = {
    "Software and Configuration Checks",
    "TTPs",
    "Effects",
    "Unusual Behaviors",
    "Sensitive Data Identifications",
}


def test_every_finding_type_has_an_entry_when_the_type_exists() -> None:
    # Given every finding type amiguard can raise / When the catalogue is read / Then each has its entry
    assert [kind.value for kind in FindingType if kind not in CATALOGUE] == []
    assert all(entry.type is kind for kind, entry in CATALOGUE.items())


@pytest.mark.parametrize("kind", list(FindingType), ids=str)
def test_entry_is_complete_when_listed(kind: FindingType) -> None:
    entry = entry_for(kind)

    assert entry.title and "\n" not in entry.title and not entry.title.endswith(".") and len(entry.title) <= 80
    assert entry.meaning.endswith(".") and entry.remedy.endswith(".")
    assert entry.raised_on and set(entry.raised_on) <= set(RaisedOn) and entry.raised_by
    assert entry.asff_types
    for asff in entry.asff_types:
        parts = asff.split("/")
        assert 2 <= len(parts) <= 3 and parts[0] in ASFF_NAMESPACES, asff
    assert all(closed in CATALOGUE for closed in entry.closes)


def test_problem_is_closed_when_amiguard_revoked_it() -> None:
    # Given a public share revoked, and one only reported (audit mode)
    base = Finding(type=FindingType.PUBLIC_SHARE, severity=Severity.CRITICAL, summary="s", account="1", region="r")
    revoked = base.model_copy(update={"action": Action.REVOKED})
    reported = base.model_copy(update={"action": Action.WOULD_REVOKE})

    # Then only the revoked one is closed
    assert is_closed(revoked) and not is_closed(reported)
    assert entry_for(FindingType.RESOLVED).compliance is Compliance.PASSED


@pytest.mark.parametrize("kind", list(FindingType), ids=str)
def test_slack_message_shows_the_catalogue_title_and_remedy_when_rendered(kind: FindingType) -> None:
    # Given a finding of each type
    finding = Finding(type=kind, severity=Severity.HIGH, summary="s", account="111122223333", region="eu-west-1")

    # When rendered for Slack
    blocks = finding_blocks(finding)["blocks"]

    # Then a section gives the catalogue's title and remedy
    entry = entry_for(kind)
    texts = [block["text"]["text"] for block in blocks if block["type"] == "section" and "text" in block]
    assert f"*{entry.title}*\n{entry.remedy}" in texts
