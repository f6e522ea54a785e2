"""The dashboard's widgets as data: template.yaml's DashboardBody with each ``${X}`` substitution read as ``X``."""

from __future__ import annotations

import json
import re
from typing import Any

SUBSTITUTION = re.compile(r"\$\{([^}]+)\}")
SOURCE = re.compile(r"SOURCE '([^']+)'")
FINDING_FIELD = re.compile(r"\bfinding\.([A-Za-z_][A-Za-z0-9_]*)")


def dashboard_widgets(template: dict[str, Any]) -> list[dict[str, Any]]:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets: list[dict[str, Any]] = json.loads(SUBSTITUTION.sub(r"\1", body))["widgets"]
    return widgets


def last_findings_query(template: dict[str, Any]) -> str:
    [widget] = [w for w in dashboard_widgets(template) if w["type"] == "log"]
    query: str = widget["properties"]["query"]
    return query


def query_sources(query: str) -> set[str]:
    """The log groups (logical ids) the Logs Insights query reads."""
    return set(SOURCE.findall(query))


def query_finding_keys(query: str) -> set[str]:
    """The keys of the logged ``finding`` object the query names (``finding.type`` → ``type``)."""
    return set(FINDING_FIELD.findall(query))
