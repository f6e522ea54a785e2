"""The process-wide cap on requests in flight (``scan --org``): never more attempts at once than the limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from amiguard.aws.pacing import InFlightCap

BODY = (
    b'<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId>'
    b"<regionInfo/></DescribeRegionsResponse>"
)


class _Raw:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield BODY


def test_requests_in_flight_never_exceed_the_cap_when_many_threads_call_at_once() -> None:
    # Given three clients (three account-regions) behind one cap of 2, a server that takes 20 ms a request
    cap = InFlightCap(2)
    busy, peak, lock = [0], [0], threading.Lock()

    def server(request: Any, **_: Any) -> AWSResponse:
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.02)
        with lock:
            busy[0] -= 1
        return AWSResponse(request.url, 200, {}, _Raw())

    clients = []
    for region in ("us-east-1", "eu-west-1", "us-west-2"):
        client = boto3.client("ec2", region_name=region, aws_access_key_id="x", aws_secret_access_key="x")
        cap.attach(client)
        client.meta.events.register_last("before-send.ec2", server)  # after the cap's slot
        clients.append(client)
    # When 12 threads make 36 calls
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda i: clients[i % 3].describe_regions(), range(36)))
    # Then
    assert peak[0] == 2 and cap.peak == 2
    assert cap.in_flight == 0
