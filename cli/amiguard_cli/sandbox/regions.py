"""The sandbox's multi-region parts: DR regions that forward their AMI events home, and the ledger table.

In AWS, ``region-forwarder.yaml`` puts EventBridge rules in each DR region whose target is the home
region's default event bus. EventBridge delivers a cross-region event unchanged: ``region`` stays the DR
region, ``detail`` and ``resources`` are untouched, and the home bus's rules match it like a local event.
moto's own cross-region bus target re-puts the event and rewrites ``region`` to the home region, which would
hide exactly what ``dr_replicator`` needs. So here the forwarder's rules (patterns read from the forwarder
template, created in moto in the DR region) target a queue; the dispatcher drains it and matches each
event, as delivered, against the home stack's rules with moto's own pattern matcher.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import boto3

from amiguard_cli.sandbox.cfn import load_template
from amiguard_cli.sandbox.queues import drain

FORWARDER_TEMPLATE = "region-forwarder.yaml"
# Organization mode: every region of every account, the stack's own home region too, forwards to the central bus.
MEMBER_FORWARDER_TEMPLATE = "org/member-forwarder.yaml"


def forwarder_patterns(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(logical id, event pattern)`` of every rule in the forwarder template."""
    rules = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::Events::Rule":
            rules.append((logical_id, resource["Properties"]["EventPattern"]))
    return rules


class RegionForwarding:
    """Forwarder rules deployed in DR regions, and the events they send home."""

    def __init__(self, root: Path, home: str, *, organization: bool = False) -> None:
        self._path = root / (MEMBER_FORWARDER_TEMPLATE if organization else FORWARDER_TEMPLATE)
        self.home = home
        # Single account: the home region runs the stack's rules on its own bus. Organization mode: those rules
        # are on the central bus, which the home region's default bus forwards to like any other region's.
        self._forwards_home = organization
        self.regions: list[str] = []
        self._queues: list[tuple[str, str]] = []  # (region, queue url)

    def deploy(self, session: boto3.Session, region: str) -> None:
        if (region == self.home and not self._forwards_home) or region in self.regions:
            return
        events = session.client("events", region_name=region)
        sqs = session.client("sqs", region_name=region)
        url = sqs.create_queue(QueueName="amiguard-forwarded-to-home")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for logical_id, pattern in forwarder_patterns(load_template(self._path)):
            events.put_rule(Name=logical_id, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=logical_id, Targets=[{"Id": "home-bus", "Arn": arn}])
        self.regions.append(region)
        self._queues.append((region, url))

    def receive(self, session: boto3.Session, account: str) -> Iterator[dict[str, Any]]:
        """Events the DR regions' rules forwarded, exactly as the home bus receives them."""
        for region, url in self._queues:
            for event in drain(session.client("sqs", region_name=region), url):
                event.setdefault("account", account)
                yield event

    @staticmethod
    def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
        """moto's EventBridge matcher (the one its rules use) applied to an event on the home bus."""
        from moto.events.models import EventPattern

        return bool(EventPattern.load(json.dumps(pattern)).matches_event(cast(Any, event)))
