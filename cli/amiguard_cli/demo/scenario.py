"""The demo: every act in order, on one sandbox account."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.text import Text

from amiguard_cli.demo import organization, replication, securityhub, sharing, sweep, tagging, tamper
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

# Played afterwards on an organization sandbox (the security account and two members), same settings.
ORGANIZATION_ACTS: list[Act] = [
    organization.act,
]

DEMO_SETTINGS = {
    "Mode": "enforce",
    "TrustedPrincipals": sharing.PARTNER,
}


INTRODUCTION = "amiguard in an embedded AWS account (moto), deployed as template.yaml says."
HOW_TO_READ = {
    False: "Each line: severity, what happened → what amiguard did.",
    True: "Each step of an act, each event delivered (rule → function: outcome), every alert as it lands.",
}


def run_demo(console: Console | None = None, *, full: bool = False) -> int:
    """Play every act; return the number of events that failed (0 when all went well).

    ``full`` prints every step, delivery and alert as it happens; otherwise one line per event and a summary.
    """
    with Sandbox(parameters=DEMO_SETTINGS) as sandbox:
        timeline = Timeline(sandbox, console, full=full)
        timeline.console.print(Text(f"{INTRODUCTION}\n{HOW_TO_READ[full]}", style="dim"))
        for act in ACTS:
            act(sandbox, timeline)
        delivered, failed, records = len(sandbox.deliveries), len(sandbox.dead_letters), len(sandbox.recorder.records)
    with Sandbox(parameters=DEMO_SETTINGS, organization=True) as sandbox:
        timeline.sandbox, timeline.home = sandbox, (sandbox.account, sandbox.home)
        for act in ORGANIZATION_ACTS:
            act(sandbox, timeline)
        delivered, failed = delivered + len(sandbox.deliveries), failed + len(sandbox.dead_letters)
        records += len(sandbox.recorder.records)
    timeline.finish()
    timeline.console.print(
        f"{delivered} deliveries ({failed} failed), {len(timeline.alerts)} alerts, {records} CloudTrail records."
    )
    if not full:
        timeline.console.print("Every step, delivery and alert: amiguard demo --full (make demo VERBOSE=1)")
    return failed
