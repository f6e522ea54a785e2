"""The demo tells the same story every time: the same events, to the same functions, with the same outcomes.

Two things made it vary: the sweeper applied its remedies on threads, so a DR copy (CopyImageTags) carried the
violation tags marked on its source in the same sweep or not, whichever call EC2 served first (and the next
sweep then had one region more or less to mark); and the events those threads caused were delivered in the
order the threads happened to run. What it prints (the short form: one line per event, one alert, a summary)
is the same too, apart from ids and times.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from rich.console import Console

from amiguard_cli.demo.scenario import run_demo
from amiguard_cli.demo.timeline import _event_label
from amiguard_cli.sandbox.account import Delivery, Sandbox
from amiguard_cli.sandbox.cloudtrail import ACCOUNT

RUNS = 3
VOLATILE = re.compile(r"\b(?:ami|snap|i)-[0-9a-f]{8,17}\b")
# What may differ between two runs of what the demo prints: ids, times, durations, and so where lines wrap.
PRINTED_VOLATILE = re.compile(
    r"\b(?:ami|snap|i|r|vol)-[0-9a-f]{8,17}\b"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{12,32}\b"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z| UTC)?"
    r"|\b\d+(?:\.\d+)? (?:s|min|h|d)\b|\b\d+\.\d+\b"
)
BOX_AND_BLANKS = re.compile(r"[\s\u2500-\u257f]+")


@dataclass
class DemoRun:
    printed: str  # what ``amiguard demo`` prints (the short form), at 80 columns
    deliveries: list[Delivery]


def play(*, full: bool = False) -> DemoRun:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    deliveries: list[Delivery] = []
    original = Sandbox.__exit__

    def keep_deliveries(sandbox: Sandbox, *exc: Any) -> Any:
        deliveries.extend(sandbox.deliveries)
        return original(sandbox, *exc)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Sandbox, "__exit__", keep_deliveries)
        run_demo(console, full=full)
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(printed, str)
    return DemoRun(printed, deliveries)


def outcomes(run: DemoRun) -> list[tuple[str, str, str, str]]:
    """(function, rule, event, outcome) of every delivery of one demo run, AMI and snapshot ids masked."""
    return [
        (
            delivery.function,
            delivery.rule,
            VOLATILE.sub("#", _event_label(delivery.event)),
            f"{(delivery.result or {}).get('status')}:{(delivery.result or {}).get('reason')}:{delivery.error}",
        )
        for delivery in run.deliveries
    ]


def stable_text(printed: str) -> str:
    return BOX_AND_BLANKS.sub(" ", PRINTED_VOLATILE.sub("#", printed))


@pytest.fixture(scope="module")
def demo_runs() -> list[DemoRun]:
    return [play() for _ in range(RUNS)]


def test_demo_delivers_the_same_events_when_run_again(demo_runs: list[DemoRun]) -> None:
    # Given / When
    runs = [outcomes(run) for run in demo_runs]
    # Then
    assert all(outcome.endswith(":None") for *_, outcome in runs[0])  # no delivery failed
    for run in runs[1:]:
        assert len(run) == len(runs[0])
        assert run == runs[0]


def test_demo_prints_the_same_story_when_run_again(demo_runs: list[DemoRun]) -> None:
    # Given / When the demo ran several times; Then it printed the same, apart from ids and times
    first = stable_text(demo_runs[0].printed)
    assert first and all(stable_text(run.printed) == first for run in demo_runs[1:])


def test_demo_prints_one_line_per_event_then_one_alert_and_a_summary_when_run_by_default(
    demo_runs: list[DemoRun],
) -> None:
    # Given / When
    printed = demo_runs[0].printed
    lines = printed.splitlines()
    # Then the first screen says what amiguard does: a person's call, what amiguard did about it
    assert any(
        line.startswith("CRIT dev-bob ModifyImageAttribute ami-") and "→ revoked public-share" in line
        for line in lines[:10]
    )
    # one Slack message and one SNS message as examples, then the summary table
    assert printed.count("Subject: [amiguard]") == 1 and printed.count("╭─ Slack") == 1
    summary = printed.split("What amiguard found and did", 1)[1]
    for kind in ("public-share", "untrusted-share", "missing-tags", "replication-complete", "amiguard-tampered"):
        assert kind in summary
    # and amiguard's own calls and the notifier's deliveries are counted, not listed
    assert "own calls ignored" in printed and "amiguard-own-action" not in printed
    assert all(len(line) <= 80 for line in lines)


def test_demo_prints_every_step_delivery_and_alert_when_run_in_full(demo_runs: list[DemoRun]) -> None:
    # Given / When
    full = play(full=True).printed
    # Then every delivery shows its rule, every alert its Slack message, and the short form is far shorter
    short = demo_runs[0].printed
    assert sum(line.startswith("  event ") for line in full.splitlines()) == len(demo_runs[0].deliveries)
    assert full.count("╭─ Slack") > 10
    assert len(short.splitlines()) * 5 < len(full.splitlines())


def test_dr_copy_does_not_carry_violation_tags_when_the_sweep_marks_its_source_while_copying() -> None:
    # Given an approved AMI lacking its Owner tag, never copied to the DR region, from before deployment
    with Sandbox(parameters={"RequiredTags": "Owner", "DrRegions": "us-west-2"}) as sb:
        ec2 = sb.internal_client("ec2")
        source = ec2.register_image(Name="golden-2019", RootDeviceName="/dev/xvda")["ImageId"]
        ec2.create_tags(Resources=[source], Tags=[{"Key": "amiguard:approved", "Value": "true"}])

        # and EC2 slow to serve the copy (the sweeper's other remedies run meanwhile)
        def slow_copy(**_: Any) -> None:
            time.sleep(0.3)

        boto3.DEFAULT_SESSION.events.register("before-call.ec2.CopyImage", slow_copy)  # type: ignore[union-attr]
        event = {
            "version": "0",
            "id": "1f0e6c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": "2026-11-27T06:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {},
        }
        # When the sweep copies it and marks its violation
        delivery = sb.invoke("sweeper", event)
        # Then the source is marked, and the copy carries only what the source had before the sweep
        assert delivery.error is None, delivery.error
        tags = {t["Key"] for t in ec2.describe_images(ImageIds=[source])["Images"][0]["Tags"]}
        assert "amiguard:violation" in tags
        [copy] = [
            image
            for image in sb.internal_client("ec2", "us-west-2").describe_images(Owners=["self"])["Images"]
            if any(t["Key"] == "amiguard:replica-of" for t in image.get("Tags", []))
        ]
        assert not {t["Key"] for t in copy["Tags"]} & {"amiguard:violation", "amiguard:violation-since"}
