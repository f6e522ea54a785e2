"""Each file in events/<function>/ reaches exactly that function through template.yaml's rules
(events/unrouted/: no function), matched by moto's EventBridge pattern engine as in the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amiguard.sandbox.cfn import event_routes, functions_matching, load_template

ROOT = Path(__file__).resolve().parents[2]
EVENT_FILES = sorted((ROOT / "events").glob("*/*.json"))

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_event_file_reaches_exactly_its_function_when_routed_by_the_template(path):
    routes = event_routes(load_template(ROOT / "template.yaml"))
    expected = set() if path.parent.name == "unrouted" else {path.parent.name}

    assert functions_matching(routes, json.loads(path.read_text())) == expected


def test_every_function_has_example_events_when_it_has_rules():
    routes = event_routes(load_template(ROOT / "template.yaml"))
    folders = {path.parent.name for path in EVENT_FILES}
    assert {route.function for route in routes} <= folders
