"""Pacing attached to a real botocore EC2 client (moto behind it): EC2's first RequestLimitExceeded arms the
region's bucket, the retry and every later read call wait their turn, writes are never held back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from amiguard.aws.pacing import PACED_RETRY_CONFIG, RegionPacer
from tests.unit.test_pacing import FakeTime

REGION = "us-east-1"


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def throttled(url: str) -> AWSResponse:
    body = (
        b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
        b"</Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    )
    return AWSResponse(url, 503, {"Content-Type": "text/xml"}, _Raw(body))


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.Session(region_name=REGION).client("ec2", config=PACED_RETRY_CONFIG)


def test_first_throttle_arms_the_bucket_and_later_reads_wait_their_turn_when_ec2_says_it_is_empty(ec2: Any) -> None:
    # Given a paced client whose first DescribeImages attempt EC2 throttles
    time = FakeTime()
    pacer = RegionPacer(burst=100, rate=20, cushion=5, clock=time.clock, sleep=time.sleep)
    pacer.attach(ec2)
    answers = [throttled]
    ec2.meta.events.register(
        "before-send.ec2.DescribeImages", lambda request, **_: answers.pop()(request.url) if answers else None
    )
    # When
    ec2.describe_images(Owners=["self"])  # throttled once, retried
    ec2.describe_images(Owners=["self"])
    ec2.describe_regions()
    # Then: no wait before EC2 spoke; the retry waited for the cushion, each later read for one token
    assert pacer.throttled == 1
    assert time.slept == [0.3, 0.05, 0.05]


def test_writes_are_never_paced_when_the_read_bucket_is_empty(ec2: Any) -> None:
    # Given an armed, empty bucket
    time = FakeTime()
    pacer = RegionPacer(burst=1, rate=20, cushion=0, armed=True, clock=time.clock, sleep=time.sleep)
    pacer.attach(ec2)
    image_id = ec2.register_image(Name="paced-write", RootDeviceName="/dev/xvda")["ImageId"]
    ec2.describe_regions()  # takes the only token
    # When
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": "Owner", "Value": "x"}])
    # Then
    assert time.slept == []


def test_attaching_twice_paces_once_when_the_same_client_is_handed_out_again(ec2: Any) -> None:
    # Given
    time = FakeTime()
    pacer = RegionPacer(burst=1, rate=20, cushion=0, armed=True, clock=time.clock, sleep=time.sleep)
    pacer.attach(ec2)
    pacer.attach(ec2)
    # When
    ec2.describe_regions()
    ec2.describe_regions()
    # Then one token per call, not two
    assert time.slept == [0.05]
