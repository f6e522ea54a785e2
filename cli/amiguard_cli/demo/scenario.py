"""The demo: every act in order, on one sandbox account."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

from amiguard_cli.demo import replication, securityhub, sharing, sweep, tagging, tamper
from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Sandbox

Act = Callable[[Sandbox, Timeline], None]

ACTS: list[Act] = [
    sharing.act,
    tagging.act,
    replication.act,
    sweep.act,
    tamper.act,
    securityhub.act,
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
        timeline.console.rule("[bold]Done")
        timeline.console.print(
            f"{len(sandbox.deliveries)} events delivered, {len(sandbox.dead_letters)} failed; "
            f"{len(sandbox.recorder.records)} CloudTrail records written."
        )
        return len(sandbox.dead_letters)
