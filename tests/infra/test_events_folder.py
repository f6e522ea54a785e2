"""Each file in events/<function>/ reaches exactly the functions it should through template.yaml's rules:
its folder's function, plus those sharing that event (events/unrouted/: none), matched by moto's
EventBridge pattern engine as in the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amiguard_cli.sandbox.cfn import event_routes, functions_matching, load_template

ROOT = Path(__file__).resolve().parents[2]
# notifier/ (an SNS delivery) and sweeper/ (its schedule's event) reach their function without a pattern rule:
# tests/integration/test_event_files_direct.py invokes them.
DIRECT = {"notifier", "sweeper"}
EVENT_FILES = sorted(path for path in (ROOT / "events").glob("*/*.json") if path.parent.name not in DIRECT)

# Events two functions subscribe to, each deciding its own part in code (coarse patterns: docs/architecture.md).
IMAGE_LIFECYCLE = {"tag_enforcer", "dr_replicator"}
SHARED_ROUTES = {
    "CreateImage": IMAGE_LIFECYCLE,
    "CopyImage": IMAGE_LIFECYCLE,
    "RegisterImage": IMAGE_LIFECYCLE,
    "CreateTags": IMAGE_LIFECYCLE,
    "DeleteTags": IMAGE_LIFECYCLE,
    "available": IMAGE_LIFECYCLE,  # "EC2 AMI State Change"
}


def expected_functions(path: Path, event: dict) -> set[str]:
    if path.parent.name == "unrouted":
        return set()
    detail = event.get("detail") or {}
    name = detail.get("eventName") or detail.get("State")
    return {path.parent.name} | SHARED_ROUTES.get(name, set())


pytestmark = pytest.mark.infra


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_event_file_reaches_exactly_its_function_when_routed_by_the_template(path):
    routes = event_routes(load_template(ROOT / "template.yaml"))
    event = json.loads(path.read_text())

    assert functions_matching(routes, event) == expected_functions(path, event)


def test_every_function_has_example_events_when_it_has_rules():
    routes = event_routes(load_template(ROOT / "template.yaml"))
    folders = {path.parent.name for path in EVENT_FILES}
    assert {route.function for route in routes} <= folders
