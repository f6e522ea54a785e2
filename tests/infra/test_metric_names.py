"""Every amiguard metric the dashboard and the alarms show is one the code emits (no silent, empty widget)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from amiguard_cli.sandbox.cfn import load_template, resources_of_type

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "amiguard" / "amiguard"

pytestmark = pytest.mark.infra


def metric_names_shown() -> set[str]:
    template = load_template(ROOT / "template.yaml")
    names: set[str] = set()
    for dashboard in resources_of_type(template, "AWS::CloudWatch::Dashboard").values():
        body = dashboard["Properties"]["DashboardBody"]
        text = body["Fn::Sub"] if isinstance(body, dict) else body
        names |= set(re.findall(r'\["amiguard",\s*"([A-Za-z]+)"', text))
    for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values():
        if alarm["Properties"].get("Namespace") == "amiguard":
            names.add(alarm["Properties"]["MetricName"])
    return names


def test_every_metric_on_the_dashboard_and_alarms_is_emitted_by_the_code_when_deployed():
    source = "\n".join(path.read_text() for path in LIBRARY.rglob("*.py"))
    shown = metric_names_shown()

    assert shown, "the dashboard shows no amiguard metric"
    assert sorted(name for name in shown if f'"{name}"' not in source) == []
