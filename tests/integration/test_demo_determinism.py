"""The demo tells the same story every time: the same events, to the same functions, with the same outcomes.

Two things made it vary: the sweeper applied its remedies on threads, so a DR copy (CopyImageTags) carried the
violation tags marked on its source in the same sweep or not, whichever call EC2 served first (and the next
sweep then had one region more or less to mark); and the events those threads caused were delivered in the
order the threads happened to run.
"""

from __future__ import annotations

import re
import time
from typing import Any

import boto3
from rich.console import Console

from amiguard_cli.demo.scenario import ACTS, DEMO_SETTINGS
from amiguard_cli.demo.timeline import Timeline, _event_label
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import ACCOUNT

RUNS = 3
VOLATILE = re.compile(r"\b(?:ami|snap|i)-[0-9a-f]{8,17}\b")


def demo_events() -> list[tuple[str, str, str, str]]:
    """(function, rule, event, outcome) of every delivery of one demo run, AMI and snapshot ids masked."""
    with Sandbox(parameters=DEMO_SETTINGS) as sandbox:
        with open("/dev/null", "w") as silent:
            timeline = Timeline(sandbox, Console(file=silent))
            for act in ACTS:
                act(sandbox, timeline)
        return [
            (
                delivery.function,
                delivery.rule,
                VOLATILE.sub("#", _event_label(delivery.event)),
                f"{(delivery.result or {}).get('status')}:{(delivery.result or {}).get('reason')}:{delivery.error}",
            )
            for delivery in sandbox.deliveries
        ]


def test_demo_delivers_the_same_events_when_run_again() -> None:
    # Given / When
    runs = [demo_events() for _ in range(RUNS)]
    # Then
    assert all(outcome.endswith(":None") for *_, outcome in runs[0])  # no delivery failed
    for run in runs[1:]:
        assert len(run) == len(runs[0])
        assert run == runs[0]


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
