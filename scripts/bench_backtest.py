"""``make bench-backtest``: records per second of ``amiguard backtest --file`` and LookupEvents against its floor.

1. Files: a gzipped trail of N records (a quarter each: CreateImage, public ModifyImageAttribute, CreateTags,
   another service's event) read and evaluated in-process, timed in CPU seconds. Alternated with the floor
   measured in the same run: reading and parsing the same file alone (gzip + json), which any evaluation pays.
   Target: >= 5,000 records per second.
2. LookupEvents: P pages served by a botocore Stubber (no network) through ``lookup_events`` with its real
   2-per-second token bucket on the real clock. The floor is what the API's limit allows: (P - 1) / 2 seconds.
   Target: <= 1.1x the floor.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import ANY, Stubber

from amiguard.models.settings import load_settings
from amiguard_cli.backtest.decide import Backtest
from amiguard_cli.history import lookup_events, read_files
from amiguard_cli.sandbox.cfn import event_routes, load_template

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"


def _record(index: int) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventSource": "ec2.amazonaws.com",
        "awsRegion": "us-east-1",
        "eventTime": f"2026-11-{1 + index % 28:02d}T{index % 24:02d}:00:00Z",
        "eventID": f"event-{index}",
        "recipientAccountId": ACCOUNT,
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/user-{index % 50}"},
    }
    image = f"ami-{index:017x}"
    kind = index % 4
    if kind == 0:
        return base | {
            "eventName": "CreateImage",
            "requestParameters": {"instanceId": "i-0123456789abcdef0"},
            "responseElements": {"imageId": image},
        }
    if kind == 1:
        grant = {"add": {"items": [{"group": "all"}]}}
        return base | {
            "eventName": "ModifyImageAttribute",
            "requestParameters": {"imageId": image, "launchPermission": grant},
        }
    if kind == 2:
        tags = {"items": [{"key": "Owner", "value": "bob"}]}
        return base | {
            "eventName": "CreateTags",
            "requestParameters": {"resourcesSet": {"items": [{"resourceId": image}]}, "tagSet": tags},
        }
    return base | {"eventSource": "s3.amazonaws.com", "eventName": "GetObject", "requestParameters": {"key": "k"}}


def bench_files(records: int, repeat: int) -> float:
    routes = event_routes(load_template(ROOT / "template.yaml"))
    settings = load_settings()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trail.json.gz"
        path.write_bytes(gzip.compress(json.dumps({"Records": [_record(i) for i in range(records)]}).encode()))
        Backtest(settings, routes).run(read_files([path]).records[:100])  # warm the router and imports
        floors, runs = [], []
        for _ in range(repeat):  # alternate floor and evaluation so a machine that changes speed moves both
            start = time.process_time()
            json.loads(gzip.decompress(path.read_bytes()))
            floors.append(time.process_time() - start)
            start = time.process_time()
            result = Backtest(settings, routes).run(read_files([path]).records)
            runs.append(time.process_time() - start)
        assert result.records == records
    floor, run = min(floors), min(runs)
    rate = records / run
    print(
        f"files: {records:,} records in {run:.2f} s CPU = {rate:,.0f} records/s "
        f"(parse-only floor {floor:.2f} s: {run / floor:.1f}x); "
        f"target >= 5,000/s: {'met' if rate >= 5000 else 'NOT met'}"
    )
    return rate


def bench_lookup(pages: int) -> float:
    client = boto3.client("cloudtrail", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    event = {"CloudTrailEvent": json.dumps(_record(1))}
    with Stubber(client) as stub:
        for page in range(pages):
            token = {"NextToken": f"t{page}"} if page < pages - 1 else {}
            stub.add_response(
                "lookup_events",
                {"Events": [event] * 50, **token},
                {
                    "LookupAttributes": ANY,
                    "StartTime": ANY,
                    "EndTime": ANY,
                    "MaxResults": ANY,
                    **({"NextToken": f"t{page - 1}"} if page else {}),
                },
            )
        start = time.monotonic()
        history = lookup_events(
            client,
            region="us-east-1",
            event_names=["ModifyImageAttribute"],
            start=datetime(2026, 11, 1, tzinfo=UTC),
            end=datetime(2026, 12, 1, tzinfo=UTC),
        )
        elapsed = time.monotonic() - start
    floor = (pages - 1) / 2.0
    ratio = elapsed / floor
    print(
        f"LookupEvents: {pages} pages ({len(history.records):,} events) in {elapsed:.2f} s; floor at 2 requests/s "
        f"{floor:.2f} s: {ratio:.3f}x; target <= 1.1x: {'met' if ratio <= 1.1 else 'NOT met'}"
    )
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pages", type=int, default=21)
    args = parser.parse_args(argv)
    bench_files(args.records, args.repeat)
    bench_lookup(args.pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
