"""The demo: every act in order, on one sandbox account."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

from amiguard_cli.demo import organization, replication, sharing, sweep, tagging, tamper
from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Sandbox

Act = Callable[[Sandbox, Timeline], None]

ACTS: list[Act] = [
    sharing.act,
    tagging.act,
    replication.act,
    sweep.act,
    tamper.act,
]

# Played afterwards on an organization sandbox (the security account and two members), same settings.
ORGANIZATION_ACTS: list[Act] = [
    organization.act,
]

DEMO_SETTINGS = {
    "Mode": "enforce",
    "TrustedPrincipals": sharing.PARTNER,
}


def run_demo(console: Console | None = None) -> int:
    """Play every act; return the number of events that failed (0 when all went well)."""
    with Sandbox(parameters=DEMO_SETTINGS) as sandbox:
        timeline = Timeline(sandbox, console)
        for act in ACTS:
            act(sandbox, timeline)
        delivered, failed, records = len(sandbox.deliveries), len(sandbox.dead_letters), len(sandbox.recorder.records)
    with Sandbox(parameters=DEMO_SETTINGS, organization=True) as sandbox:
        timeline = Timeline(sandbox, timeline.console)
        for act in ORGANIZATION_ACTS:
            act(sandbox, timeline)
        delivered, failed = delivered + len(sandbox.deliveries), failed + len(sandbox.dead_letters)
        records += len(sandbox.recorder.records)
    timeline.console.rule("[bold]Done")
    timeline.console.print(f"{delivered} events delivered, {failed} failed; {records} CloudTrail records written.")
    return failed
