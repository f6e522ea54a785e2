"""The runtime-call scanner (botocore_calls.py) on small sources: what it takes for a client, and what not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .botocore_calls import Scan, scan

pytestmark = pytest.mark.infra

WATCHED = frozenset({"describe_images", "deregister_image", "publish", "put_item"})

FACTORY = """
    import boto3

    class ClientFactory:
        def _make(self, service, region):
            return boto3.client(service, region_name=region)

        def ec2(self, region):
            return self._client("ec2", region)

        def cloudtrail(self):
            return self._client("cloudtrail", None)
"""


def _scan(tmp_path: Path, **modules: str) -> Scan:
    for name, source in {"clients": FACTORY, **modules}.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return scan(sorted(tmp_path.glob("*.py")), WATCHED, relative_to=tmp_path)


def _calls(found: Scan) -> set[tuple[str, str, str]]:
    return {(call.service, call.kind, call.name) for call in found.calls}


def test_scan_finds_calls_on_annotated_injected_and_factory_made_clients_when_called(tmp_path: Path) -> None:
    found = _scan(
        tmp_path,
        adapter="""
            from mypy_boto3_ec2 import EC2Client
            from mypy_boto3_sns.client import SNSClient as Sns

            class Images:
                def __init__(self, ec2: EC2Client, sns: "Sns") -> None:
                    self._ec2 = ec2
                    self._topic = sns

                def drop(self) -> None:
                    self._ec2.deregister_image(ImageId="ami-1")
                    self._ec2.get_paginator("describe_images")
                    self._ec2.get_waiter("image_available")
                    self._topic.publish(Message="m")

            def lookup(clients) -> None:
                clients.ec2("eu-west-1").describe_images()
                dynamodb = boto3.client("dynamodb")
                dynamodb.put_item(TableName="t", Item={})
        """,
    )

    assert _calls(found) == {
        ("ec2", "method", "deregister_image"),
        ("ec2", "paginator", "describe_images"),
        ("ec2", "waiter", "image_available"),
        ("sns", "method", "publish"),
        ("ec2", "method", "describe_images"),
        ("dynamodb", "method", "put_item"),
    }
    assert found.unresolved == []


def test_scan_lists_every_service_a_client_is_made_for_when_made_or_offered_by_the_factory(tmp_path: Path) -> None:
    found = _scan(
        tmp_path, app='import boto3\nboto3.client("organizations")\nboto3.Session().client(service_name="sts")\n'
    )

    assert set(found.services) == {"ec2", "cloudtrail", "organizations", "sts"}
    assert found.dynamic == []  # the factory's own boto3.client(service) is its plumbing


def test_scan_skips_ports_and_adapters_when_their_methods_are_named_like_operations(tmp_path: Path) -> None:
    found = _scan(
        tmp_path,
        service="""
            from collections.abc import Callable
            from functools import cache

            class Service:
                def __init__(self, alerts: "AlertsPort", build: Callable[[], "AlertsPort"], ports: "Ports") -> None:
                    self._alerts = alerts
                    self._build = cache(build)
                    self._ports = ports

                def run(self) -> None:
                    self._alerts.publish("finding")
                    self._build().publish("finding")
                    self._ports.images("us-east-1").deregister_image("ami-1")
                    Ec2Images(None).describe_images()
        """,
    )

    assert found.calls == [] and found.unresolved == []


def test_scan_reports_the_call_when_its_receiver_is_of_unknown_type(tmp_path: Path) -> None:
    found = _scan(tmp_path, app="def handle(thing):\n    thing.deregister_image(ImageId='ami-1')\n")

    assert [(call, str(site)) for call, site in found.unresolved] == [("thing.deregister_image", "app.py:2")]


def test_scan_reports_the_client_when_its_service_is_not_a_literal(tmp_path: Path) -> None:
    found = _scan(tmp_path, app="import boto3\ndef make(name):\n    return boto3.client(name)\n")

    assert [str(site) for site in found.dynamic] == ["app.py:3"]
