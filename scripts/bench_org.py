"""``make bench-org``: ``amiguard scan --org`` over 20 accounts x 2 regions x 300 AMIs against its floor and c7n-org.

The server: EC2, STS and Organizations stubbed at botocore's HTTP layer (``URLLib3Session.send``), in process,
on the real clock. Every request is serialised, signed, sent, parsed and retried by botocore exactly as against
AWS; the server answers EC2's Query protocol with EC2's XML documents, and puts each account-region behind its own
token bucket for non-mutating calls (100 burst, 20 per second refill; ``RequestLimitExceeded`` with HTTP 503 when
empty), as EC2 does. The account is the one the request's access key was issued to by the stubbed AssumeRole.
Each answer takes ``--latency`` (default 30 ms, a DescribeImageAttribute's round trip in a region), sleeping with
the GIL released as a socket read does.

Three numbers, one run:
1. the floor: per account-region, (read calls it served - 100) / 20 s; accounts in parallel, so the largest;
2. ``amiguard scan --org`` (scan_organization, the CLI's own code), wall time;
3. c7n-org's model on the same server: its worker pool (``C7N_ORG_PARALLEL``, default the CPU count x 4,
   c7n_org/cli.py ``WORKER_COUNT``), one task per account-region, each task assuming the account's role and
   scanning its one region. Each task runs amiguard's own region scan (same calls, same client-side pacing):
   generous to c7n-org, whose AMI filters make the same per-image calls without pacing; what is compared is the
   scheduling.
Then the member-role STS calls a warm function makes per account per hour (botocore's refresh on a virtual
clock) with the 2-hour sessions amiguard asks for, and with 1-hour sessions (a role whose MaxSessionDuration is
the default). Prints ratios; asserts nothing (a timed test would be flaky).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import parse_qs

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.httpsession import URLLib3Session

from amiguard.aws.accounts import ADVISORY_REFRESH_SECONDS, SESSION_SECONDS, AccountClients
from amiguard.aws.clients import ClientFactory
from amiguard_cli.org import Account, member_sessions
from amiguard_cli.scan import ScanSessions, add_parser, scan_account
from amiguard_cli.scan_org import scan_organization

CENTRAL = "999900000000"
UNTRUSTED = "444455556666"
REGIONS = ("us-east-1", "eu-west-1")
BURST, REFILL = 100, 20.0
READ = ("Describe", "Get", "List")
CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/\d{8}/([a-z0-9-]+)/")
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class Bucket:
    """EC2's request-rate limit of one account-region: ``burst`` tokens, ``refill`` per second."""

    def __init__(self) -> None:
        self.tokens, self.stamp, self.lock = float(BURST), time.monotonic(), threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(BURST, self.tokens + (now - self.stamp) * REFILL)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _key(account: str) -> str:
    return f"ASIA{account}AAAA"  # the access key names the account it was issued for


@dataclass
class Server:
    """EC2, STS and Organizations for ``accounts``, each owning ``images`` AMIs (and their snapshots) per region."""

    accounts: list[Account]
    images: int
    latency: float
    calls: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)  # (account, region, action, outcome)
    buckets: dict[tuple[str, str], Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _pages: dict[tuple[str, str, str], bytes] = field(default_factory=dict)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.buckets.clear()

    def send(self, request: AWSPreparedRequest) -> AWSResponse:
        match = CREDENTIAL.search(_text(request.headers.get("Authorization")))
        key, region = (match.group(1), match.group(2)) if match else ("", "?")
        account = key[4:16] if key.startswith("ASIA") and key[4:16].isdigit() else CENTRAL
        target = _text(request.headers.get("X-Amz-Target"))
        body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
        params = {name: values[0] for name, values in parse_qs(body.decode()).items()}
        action = target.rsplit(".", 1)[-1] if target else params.get("Action", "?")
        if "ec2." in request.url and action.startswith(READ):
            with self.lock:
                bucket = self.buckets.setdefault((account, region), Bucket())
            if not bucket.take():
                with self.lock:
                    self.calls[(account, region, action, "throttled")] += 1
                time.sleep(self.latency)
                return self._answer(request, _THROTTLED, 503)
        with self.lock:
            self.calls[(account, region, action, "served")] += 1
        time.sleep(self.latency)
        if target:
            return self._answer(request, self._organizations(action), 200, json_type=True)
        if "sts." in request.url:
            return self._answer(request, self._sts(params), 200)
        return self._answer(request, self._ec2(account, region, action, params), 200)

    @staticmethod
    def _answer(request: AWSPreparedRequest, body: bytes, status: int, *, json_type: bool = False) -> AWSResponse:
        kind = "application/x-amz-json-1.1" if json_type else "text/xml"
        return AWSResponse(request.url, status, {"Content-Type": kind}, _Raw(body))

    def _organizations(self, action: str) -> bytes:
        if action != "ListAccounts":
            raise AssertionError(f"the bench's Organizations has no {action}")
        return json.dumps(
            {
                "Accounts": [
                    {"Id": a.id, "Name": a.name, "Status": "ACTIVE", "State": "ACTIVE", "Email": f"{a.name}@x.test"}
                    for a in self.accounts
                ]
            }
        ).encode()

    def _sts(self, params: dict[str, str]) -> bytes:
        account = params["RoleArn"].split(":")[4]
        expires = (datetime.now(UTC) + timedelta(seconds=int(params.get("DurationSeconds", 3600)))).isoformat()
        return (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>'
            f"<AccessKeyId>{_key(account)}</AccessKeyId><SecretAccessKey>{'s' * 40}</SecretAccessKey>"
            f"<SessionToken>token</SessionToken><Expiration>{expires}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROAEXAMPLE:{params['RoleSessionName']}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::{account}:assumed-role/r/{params['RoleSessionName']}</Arn></AssumedRoleUser>"
            "</AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>"
        ).encode()

    def _ec2(self, account: str, region: str, action: str, params: dict[str, str]) -> bytes:
        if action == "DescribeImages":
            return self._page(account, region, "images")
        if action == "DescribeSnapshots":
            public = any(name.startswith("RestorableBy") for name in params)
            return _ec2_doc(action, "<snapshotSet/>") if public else self._page(account, region, "snapshots")
        if action == "DescribeImageAttribute":
            image = params["ImageId"]
            shared = int(image[-8:], 16) % 100 == 0  # 1 in 100 shared with an account nobody trusts
            grant = f"<item><userId>{UNTRUSTED}</userId></item>" if shared else ""
            return _ec2_doc(action, f"<imageId>{image}</imageId><launchPermission>{grant}</launchPermission>")
        if action == "DescribeSnapshotAttribute":
            return _ec2_doc(action, f"<snapshotId>{params['SnapshotId']}</snapshotId><createVolumePermission/>")
        if action == "GetImageBlockPublicAccessState":
            return _ec2_doc(action, "<imageBlockPublicAccessState>block-new-sharing</imageBlockPublicAccessState>")
        if action == "DescribeRegions":
            items = "".join(
                f"<item><regionName>{name}</regionName><regionEndpoint>ec2.{name}.amazonaws.com</regionEndpoint>"
                "<optInStatus>opt-in-not-required</optInStatus></item>"
                for name in REGIONS
            )
            return _ec2_doc(action, f"<regionInfo>{items}</regionInfo>")
        raise AssertionError(f"the bench's EC2 has no {action}")

    def _page(self, account: str, region: str, kind: str) -> bytes:
        with self.lock:
            cached = self._pages.get((account, region, kind))
        if cached is not None:
            return cached
        items = []
        for n in range(self.images):
            serial = f"{int(account) % 65536:04x}{REGIONS.index(region):04x}{n:08x}"
            image, snapshot = f"ami-0{serial}", f"snap-0{serial}"
            if kind == "images":
                items.append(
                    f"<item><imageId>{image}</imageId><imageState>available</imageState>"
                    f"<imageOwnerId>{account}</imageOwnerId><creationDate>2026-06-01T00:00:00.000Z</creationDate>"
                    f"<isPublic>false</isPublic><name>image-{n}</name><imageType>machine</imageType>"
                    "<rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName>"
                    f"<blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs><snapshotId>{snapshot}"
                    "</snapshotId><volumeSize>8</volumeSize><encrypted>true</encrypted></ebs></item>"
                    "</blockDeviceMapping><tagSet><item><key>Owner</key><value>team</value></item>"
                    "<item><key>CostCenter</key><value>42</value></item></tagSet></item>"
                )
            else:
                items.append(
                    f"<item><snapshotId>{snapshot}</snapshotId><volumeId>vol-0{serial}</volumeId>"
                    f"<status>completed</status><ownerId>{account}</ownerId><volumeSize>8</volumeSize>"
                    "<startTime>2026-06-01T00:00:00.000Z</startTime><encrypted>true</encrypted></item>"
                )
        wrapper = "imagesSet" if kind == "images" else "snapshotSet"
        action = "DescribeImages" if kind == "images" else "DescribeSnapshots"
        page = _ec2_doc(action, f"<{wrapper}>{''.join(items)}</{wrapper}>")
        with self.lock:
            self._pages[(account, region, kind)] = page
        return page

    # --- what was served --------------------------------------------------------------------------------

    def reads(self, outcome: str = "served") -> Counter[tuple[str, str]]:
        """Read-only EC2 calls per account-region."""
        result: Counter[tuple[str, str]] = Counter()
        for (account, region, action, kind), count in self.calls.items():
            if kind == outcome and action.startswith(READ) and region in REGIONS and account != CENTRAL:
                result[(account, region)] += count
        return result

    def count(self, action: str) -> int:
        return sum(n for (_, _, name, kind), n in self.calls.items() if name == action and kind == "served")


def _ec2_doc(action: str, inner: str) -> bytes:
    return f'<{action}Response xmlns="{EC2_NS}"><requestId>r</requestId>{inner}</{action}Response>'.encode()


_THROTTLED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>'
    b"<Message>Request limit exceeded.</Message></Error></Errors><RequestID>r</RequestID></Response>"
)


def floor_seconds(reads: Counter[tuple[str, str]]) -> float:
    """One account-region's bucket time (accounts and regions in parallel: the slowest of them)."""
    return max((max(0, n - BURST) / REFILL for n in reads.values()), default=0.0)


# --- the runs ---------------------------------------------------------------------------------------------


def _args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["scan", *extra])


def run_amiguard(server: Server, session: boto3.Session, concurrency: int) -> tuple[float, int, int]:
    """``amiguard scan --org``: (seconds, exit code, findings)."""
    args = _args("--org", "--regions", ",".join(REGIONS), "--account-concurrency", str(concurrency))
    server.reset()
    start = time.monotonic()
    report = scan_organization(args, session)
    seconds = time.monotonic() - start
    assert report is not None, "scan --org could not start"
    assert not report.errors, report.errors[:3]
    return seconds, report.exit_code, len(report.findings)


def run_c7n_org_model(server: Server, session: boto3.Session, workers: int) -> tuple[float, int]:
    """c7n-org's scheduling: ``workers`` at a time, one task per account-region, each assuming the role."""
    server.reset()
    tasks = [(account, region) for account in server.accounts for region in REGIONS]

    def task(job: tuple[Account, str]) -> int:
        account, region = job
        member = member_sessions(session, "amiguard-reader", purpose="c7n-org").session(account.id)
        args = _args("--regions", region)
        report = scan_account(args, session, account=account.id, sessions=ScanSessions.one(member), progress_bar=False)
        assert report is not None
        return len(report.findings)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = sum(pool.map(task, tasks))
    return time.monotonic() - start, found


def sts_per_hour(hours: float = 8.0) -> float:
    """AssumeRole calls per account per hour of a warm function that signs a request every minute."""
    clock = [datetime.now(UTC)]

    class _Sts:
        calls = 0

        def assume_role(self, **params: Any) -> dict[str, Any]:
            _Sts.calls += 1
            expires = clock[0] + timedelta(seconds=params["DurationSeconds"])
            return {
                "Credentials": {
                    "AccessKeyId": "ASIA" + "A" * 16,
                    "SecretAccessKey": "s" * 40,
                    "SessionToken": "t",
                    "Expiration": expires,
                }
            }

    class _Central(ClientFactory):  # the function's own clients: STS answers as above
        def client(self, service: str, region: str | None = None) -> Any:
            return _Sts()

    central = _Central(boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name=REGIONS[0]))
    accounts = AccountClients(
        central,
        function="public_guard",
        organization=True,
        own_role_arns=("arn:aws:iam::999999999999:role/amiguard/x",),
        clock=lambda: clock[0],
    )
    credentials = accounts.session("111122223333").get_credentials()
    for _ in range(int(hours * 60)):
        credentials.get_frozen_credentials()  # what signing each request does
        clock[0] += timedelta(minutes=1)
    return _Sts.calls / hours


def ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}x" if floor else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--images", type=int, default=300, help="AMIs per account-region")
    parser.add_argument("--latency", type=float, default=0.03, help="seconds the server takes per answer")
    parser.add_argument("--account-concurrency", type=int, default=32)
    parser.add_argument("--c7n-workers", type=int, default=multiprocessing.cpu_count() * 4)
    parser.add_argument("--skip-c7n", action="store_true", help="only amiguard (quick iterations)")
    args = parser.parse_args(argv)

    accounts = [Account(f"{100000000000 + n:012d}", f"account-{n:02d}") for n in range(args.accounts)]
    server = Server(accounts, args.images, args.latency)
    session = boto3.Session(
        aws_access_key_id="AKIACENTRALEXAMPLE00", aws_secret_access_key="s" * 40, region_name=REGIONS[0]
    )
    print(
        f"bench-org: {args.accounts} accounts x {len(REGIONS)} regions x {args.images} AMIs; each account-region "
        f"behind EC2's bucket ({BURST} burst, {REFILL:g}/s); {args.latency * 1000:.0f} ms per answer; real clock",
        flush=True,
    )
    with mock.patch.object(URLLib3Session, "send", lambda _self, request: server.send(request)):
        cpu = time.process_time()
        seconds, code, findings = run_amiguard(server, session, args.account_concurrency)
        cpu = time.process_time() - cpu
        reads, throttled = server.reads(), server.reads("throttled")
        floor = floor_seconds(reads)
        per_region = sorted(reads.values())
        print(
            f"  floor (one account-region's bucket: {per_region[-1]} reads - {BURST} burst at {REFILL:g}/s; "
            f"accounts in parallel): {floor:.2f} s"
        )
        print(
            f"  amiguard scan --org: {seconds:.2f} s ({ratio(seconds, floor)} the floor; target <= 1.3x: "
            f"{'met' if floor and seconds / floor <= 1.3 else 'NOT met'}); exit {code}, {findings} findings, "
            f"{sum(reads.values())} reads served, {sum(throttled.values())} throttled, "
            f"{server.count('AssumeRole')} AssumeRole, CPU {cpu:.1f} s"
        )
        if not args.skip_c7n:
            theirs, found = run_c7n_org_model(server, session, args.c7n_workers)
            print(
                f"  c7n-org model ({args.c7n_workers} workers, one task per account-region, "
                f"{len(accounts) * len(REGIONS)} tasks): {theirs:.2f} s ({ratio(theirs, floor)} the floor), "
                f"{found} findings, {server.count('AssumeRole')} AssumeRole"
            )
            print(
                f"  amiguard / c7n-org: {seconds / theirs:.2f}x "
                f"({'ahead' if seconds < theirs else 'NOT ahead'}: c7n-org takes {theirs / seconds:.1f}x as long)"
            )
    rate = sts_per_hour()
    print(
        f"  STS AssumeRole per account per warm function: {rate:.2f}/h with {SESSION_SECONDS // 60}-minute sessions "
        f"(role chaining's maximum), renewed with {ADVISORY_REFRESH_SECONDS // 60} minutes left "
        f"(target <= 1/h: {'met' if rate <= 1 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
