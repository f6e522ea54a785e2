"""Benchmark ``amiguard scan`` against Cloud Custodian on a moto server on loopback (``make bench-scan``).

1. A ``ThreadedMotoServer`` on 127.0.0.1, seeded with 2,000 AMIs across 2 regions (2% public, 5% shared
   with an untrusted account, 3% with a trusted one, 30% missing a required tag).
2. ``amiguard scan`` and ``custodian run`` (its own venv, ``.venv-c7n``) against it via ``AWS_ENDPOINT_URL``;
   API calls are counted by action on the server side (a WSGI middleware), wall time on this side.
3. The same with EC2's token bucket in front of the server (100 burst, 20 per second refill per region,
   ``RequestLimitExceeded`` with HTTP 503 when empty), for non-mutating calls.

Prints ratios; asserts nothing (a timed test would be flaky). Everything is bounded by timeouts.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.config import Config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from amiguard_cli.sandbox.estate import TRUSTED_ACCOUNT, Estate, plant_estate
from amiguard_cli.sandbox.moto_gaps import patch_moto

ROOT = Path(__file__).resolve().parent.parent
REGIONS = ("us-east-1", "eu-west-1")
REQUIRED_TAGS = ("Owner", "CostCenter")
READ_ONLY = ("Describe", "Get", "List")
CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")
Environ = dict[str, Any]
StartResponse = Callable[..., Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]


# --- the server and its middleware ------------------------------------------------------------------------


def _action_and_region(environ: Environ) -> tuple[str, str, bytes]:
    """Read the Query-protocol body (and keep it for moto)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    params = parse_qs(body.decode("utf-8", "replace")) | parse_qs(environ.get("QUERY_STRING", ""))
    action = (params.get("Action") or ["?"])[0]
    match = CREDENTIAL_REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    return action, match.group(1) if match else "?", body


class TokenBucket:
    """EC2's request-rate limit for one region: ``burst`` tokens, ``refill`` per second."""

    def __init__(self, burst: float = 100, refill: float = 20) -> None:
        self.burst, self.refill = burst, refill
        self.tokens = burst
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.refill)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


THROTTLED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>'
    b"<Message>Request limit exceeded.</Message></Error></Errors>"
    b"<RequestID>5f7b1e1c-0000-4000-8000-000000000000</RequestID></Response>"
)


@dataclass
class Gate:
    """Counts every call by (region, action, outcome); throttles read-only calls while ``throttle`` is on."""

    app: App
    throttle: bool = False
    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    first_served: dict[str, float] = field(default_factory=dict)  # action -> monotonic time of its first call

    def reset(self, *, throttle: bool) -> None:
        with self.lock:
            self.calls.clear()
            self.buckets.clear()
            self.first_served.clear()
            self.throttle = throttle

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        action, region, _ = _action_and_region(environ)
        if self.throttle and action.startswith(READ_ONLY):
            with self.lock:
                bucket = self.buckets.setdefault(region, TokenBucket())
            if not bucket.take():
                with self.lock:
                    self.calls[(region, action, "throttled")] += 1
                start_response("503 Service Unavailable", [("Content-Type", "text/xml")])
                return [THROTTLED_BODY]
        with self.lock:
            self.calls[(region, action, "served")] += 1
            self.first_served.setdefault(action, time.monotonic())
        return self.app(environ, start_response)

    def served(self) -> Counter[str]:
        return Counter({action: n for (_, action, outcome), n in self.calls.items() if outcome == "served"} or {})

    def by_action(self, outcome: str) -> Counter[str]:
        result: Counter[str] = Counter()
        for (_, action, kind), count in self.calls.items():
            if kind == outcome:
                result[action] += count
        return result

    def by_region(self, outcome: str) -> Counter[str]:
        result: Counter[str] = Counter()
        for (region, action, kind), count in self.calls.items():
            if kind == outcome and action.startswith(READ_ONLY):
                result[region] += count
        return result


class BenchServer(ThreadedMotoServer):
    """moto's threaded server with the :class:`Gate` in front of its WSGI app."""

    def __init__(self, port: int) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.gate = Gate(DomainDispatcherApplication(create_backend_app))

    def _server_entry(self) -> None:
        self._server = make_server(self._ip_address, self._port, self.gate, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- runs -------------------------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    seconds: float
    calls: Counter[str]
    throttled: Counter[str]
    found: dict[str, set[str]]
    exit_code: int
    note: str = ""
    started: float = 0.0  # monotonic
    first_served: dict[str, float] = field(default_factory=dict)

    @property
    def listing_seconds(self) -> float | None:
        """From the start to the first per-image call: start-up, identity, regions, the AMI lists."""
        first = self.first_served.get("DescribeImageAttribute")
        return first - self.started if first else None

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def aws_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AMIGUARD_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGIONS[0],
        AMIGUARD_TRUSTED_PRINCIPALS=TRUSTED_ACCOUNT,
        AMIGUARD_REQUIRED_TAGS=",".join(REQUIRED_TAGS),
    )
    return env


def run_amiguard(
    server: BenchServer, endpoint: str, workdir: Path, *, throttle: bool, timeout: float, extra: Sequence[str] = ()
) -> Run:
    server.gate.reset(throttle=throttle)
    output = workdir / f"amiguard-{'throttled' if throttle else 'plain'}.json"
    command = [sys.executable, "-m", "amiguard_cli.main", "scan", "--regions", ",".join(REGIONS), "--format", "json"]
    command += ["--concurrency", os.environ.get("AMIGUARD_BENCH_CONCURRENCY", "8"), *extra]
    started = time.monotonic()
    done = subprocess.run(
        [*command, "--output", str(output)],
        env=aws_env(endpoint),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    found: dict[str, set[str]] = {}
    note = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    if output.exists():
        report = json.loads(output.read_text())
        for finding in report["findings"]:
            found.setdefault(finding["type"], set()).add(finding["image_id"])
        if report["errors"]:
            note = f"{len(report['errors'])} error(s), first: {report['errors'][0]['message']}"
    return Run(
        "amiguard scan",
        seconds,
        server.gate.by_action("served"),
        server.gate.by_action("throttled"),
        found,
        done.returncode,
        note,
        started,
        dict(server.gate.first_served),
    )


CUSTODIAN_POLICY = """\
policies:
  - name: ami-cross-account
    resource: ami
    filters:
      - type: cross-account
        whitelist: ["{trusted}"]
  - name: ami-missing-tag
    resource: ami
    filters:
      - "tag:{tag}": absent
"""


def ensure_custodian(venv: Path) -> Path:
    custodian = venv / "bin" / "custodian"
    if not custodian.exists():
        print(f"creating {venv} (PyPI c7n) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "c7n==0.9.53"],
            check=True,
            timeout=900,
        )
    return custodian


def run_custodian(
    server: BenchServer, endpoint: str, custodian: Path, workdir: Path, *, throttle: bool, timeout: float
) -> Run:
    server.gate.reset(throttle=throttle)
    policy = workdir / "policy.yml"
    policy.write_text(CUSTODIAN_POLICY.format(trusted=TRUSTED_ACCOUNT, tag=REQUIRED_TAGS[-1]))
    out = workdir / f"c7n-{'throttled' if throttle else 'plain'}"
    regions = [arg for region in REGIONS for arg in ("-r", region)]
    started = time.monotonic()
    try:
        done = subprocess.run(
            # --cache-period 0: no resources from an earlier run's cache (the default keeps them 15 minutes)
            [str(custodian), "run", "--cache-period", "0", "-s", str(out), *regions, str(policy)],
            env=aws_env(endpoint),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        code, log = done.returncode, done.stderr
    except subprocess.TimeoutExpired:
        code, log = -1, f"stopped after {timeout:.0f} s"
    seconds = time.monotonic() - started
    found: dict[str, set[str]] = {}
    for resources in out.glob("**/resources.json"):
        kind = "cross-account" if "cross-account" in str(resources) else "missing-tag"
        found.setdefault(kind, set()).update(item["ImageId"] for item in json.loads(resources.read_text()))
    errors = [line for line in log.splitlines() if "rror" in line]
    note = f"{len(errors)} error line(s) in its log, first: {errors[0][-160:]}" if errors else ""
    if code == -1:
        note = log
    return Run(
        "custodian", seconds, server.gate.by_action("served"), server.gate.by_action("throttled"), found, code, note
    )


# --- judging and printing ---------------------------------------------------------------------------------


def ids(pairs: set[tuple[str, str]]) -> set[str]:
    return {image_id for _, image_id in pairs}


def judge_amiguard(run: Run, estate: Estate) -> str:
    expected = {"public-share": ids(estate.public), "untrusted-share": ids(estate.untrusted)}
    verdicts = []
    for kind, want in expected.items():
        got = run.found.get(kind, set())
        verdicts.append(f"{kind} {len(got & want)}/{len(want)} found, {len(got - want)} extra")
    missing_tag = run.found.get("missing-tags", set())
    want = ids(estate.missing_tag)
    verdicts.append(f"missing-tags {len(missing_tag & want)}/{len(want)} found, {len(missing_tag - want)} extra")
    others = set(run.found) - {*expected, "missing-tags"}
    if others:
        verdicts.append(f"unexpected finding types: {sorted(others)}")
    return "; ".join(verdicts)


def judge_custodian(run: Run, estate: Estate) -> str:
    want_shared = ids(estate.public) | ids(estate.untrusted)
    got_shared = run.found.get("cross-account", set())
    got_tag = run.found.get("missing-tag", set())
    return (
        f"cross-account {len(got_shared & want_shared)}/{len(want_shared)} found, "
        f"{len(got_shared - want_shared)} extra; "
        f"missing-tag {len(got_tag & ids(estate.missing_tag))}/{len(estate.missing_tag)} found, "
        f"{len(got_tag - ids(estate.missing_tag))} extra"
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def print_pair(title: str, ours: Run, theirs: Run) -> None:
    print(f"\n== {title}")
    actions = sorted(set(ours.calls) | set(theirs.calls))
    print(f"{'API calls by action':<34}{'amiguard':>10}{'custodian':>11}")
    for action in actions:
        print(f"  {action:<32}{ours.calls.get(action, 0):>10}{theirs.calls.get(action, 0):>11}")
    print(f"  {'total':<32}{ours.total:>10}{theirs.total:>11}   ratio {ratio(ours.total, theirs.total)}")
    throttled_ours, throttled_theirs = sum(ours.throttled.values()), sum(theirs.throttled.values())
    if throttled_ours or throttled_theirs:
        print(f"  {'answered RequestLimitExceeded':<32}{throttled_ours:>10}{throttled_theirs:>11}")
    seconds = f"{ours.seconds:>10.2f}{theirs.seconds:>11.2f}"
    print(f"{'wall time (s)':<34}{seconds}   ratio {ratio(ours.seconds, theirs.seconds)}")
    print(f"{'exit code':<34}{ours.exit_code:>10}{theirs.exit_code:>11}")
    for run in (ours, theirs):
        if run.note:
            print(f"  {run.name}: {run.note}")


def print_one(title: str, run: Run) -> None:
    print(f"\n== {title}")
    print(f"{'API calls by action':<34}{'amiguard':>10}")
    for action in sorted(run.calls):
        print(f"  {action:<32}{run.calls[action]:>10}")
    print(f"  {'total':<32}{run.total:>10}")
    if run.throttled:
        print(f"  {'answered RequestLimitExceeded':<32}{sum(run.throttled.values()):>10}")
    print(f"{'wall time (s)':<34}{run.seconds:>10.2f}")
    print(f"{'exit code':<34}{run.exit_code:>10}")
    if run.note:
        print(f"  {run.name}: {run.note}")


def floor_seconds(server_calls: Counter[str], *, parallel: bool) -> float:
    """The bucket's floor: per region, (read-only calls beyond the burst) / refill. A client that scans
    regions in parallel waits for the slowest region; one that scans them in turn waits for their sum."""
    floors = [max(0, count - 100) / 20 for count in server_calls.values()]
    return (max(floors, default=0.0)) if parallel else sum(floors)


THROTTLED = "behind EC2's token bucket (100 burst, 20/s per region, read-only calls)"


def throttled(
    server: BenchServer,
    endpoint: str,
    custodian: Path | None,
    workdir: Path,
    estate: Estate,
    args: argparse.Namespace,
    extra: Sequence[str],
) -> None:
    """``--repeat`` amiguard runs behind the bucket (each against its own floor), then custodian once."""
    print(f"\n== {THROTTLED}: amiguard scan, {args.repeat} run(s)", flush=True)
    runs: list[tuple[Run, float]] = []
    for attempt in range(args.repeat):
        time.sleep(6)  # let the buckets fill: each run starts with a full burst
        run = run_amiguard(server, endpoint, workdir, throttle=True, timeout=args.timeout, extra=extra)
        floor = floor_seconds(server.gate.by_region("served"), parallel=True)
        runs.append((run, floor))
        listing = run.listing_seconds
        phases = ""
        if listing is not None:
            # After the first per-image call the bucket is the only limit: (calls then - what was left) / refill.
            per_image = run.seconds - listing
            phases = f"; start-up and listing {listing:.2f} s, then {per_image:.2f} s"
        print(
            f"  run {attempt + 1}: {run.seconds:.2f} s against a floor of {floor:.2f} s "
            f"({ratio(run.seconds, floor)}), {run.total} calls, "
            f"{sum(run.throttled.values())} answered RequestLimitExceeded, exit {run.exit_code}{phases}",
            flush=True,
        )
    ranked = sorted(runs, key=lambda pair: pair[0].seconds / pair[1] if pair[1] else 0.0)
    ratios = [run.seconds / floor for run, floor in ranked if floor]
    if ratios:
        print(
            f"  amiguard / floor over {len(ratios)} run(s): min {ratios[0]:.3f}x, "
            f"median {statistics.median(ratios):.3f}x, max {ratios[-1]:.3f}x"
        )
    ours, floor = ranked[len(ranked) // 2]
    if custodian is None:
        print_one(f"{THROTTLED} (median run)", ours)
    else:
        time.sleep(6)
        theirs = run_custodian(server, endpoint, custodian, workdir, throttle=True, timeout=args.timeout)
        floor_theirs = floor_seconds(server.gate.by_region("served"), parallel=False)
        print_pair(f"{THROTTLED} (amiguard: median run)", ours, theirs)
        print(
            f"  bucket floor for custodian's calls: {floor_theirs:.2f} s -> custodian at "
            f"{ratio(theirs.seconds, floor_theirs)}"
        )
        print(f"  custodian found: {judge_custodian(theirs, estate)}")
    print(f"  bucket floor for amiguard's calls: {floor:.2f} s -> amiguard at {ratio(ours.seconds, floor)}")
    print(f"  amiguard found: {judge_amiguard(ours, estate)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="AMIs in all (split across 2 regions)")
    parser.add_argument("--c7n-venv", default=str(ROOT / ".venv-c7n"))
    parser.add_argument("--timeout", type=float, default=600, help="seconds any one run may take")
    parser.add_argument("--skip-throttled", action="store_true")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="throttled amiguard runs (the spread is printed; custodian runs once)",
    )
    parser.add_argument("--amiguard-only", action="store_true", help="skip custodian (quick iterations)")
    parser.add_argument("--scan-args", default="", help="extra arguments for amiguard scan (e.g. '--rate 0')")
    args = parser.parse_args()

    patch_moto()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    custodian = None if args.amiguard_only else ensure_custodian(Path(args.c7n_venv))
    server = BenchServer(free_port())
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        print(f"moto server on {endpoint}; seeding {args.images} AMIs across {', '.join(REGIONS)} ...", flush=True)
        started = time.monotonic()
        config = Config(max_pool_connections=16, retries={"mode": "standard", "max_attempts": 3})
        clients = {
            region: boto3.client("ec2", region_name=region, endpoint_url=endpoint, config=config) for region in REGIONS
        }
        estate = plant_estate(
            clients.__getitem__,
            regions=REGIONS,
            per_region=args.images // len(REGIONS),
            required_tags=REQUIRED_TAGS,
            workers=12,
        )
        print(
            f"seeded in {time.monotonic() - started:.1f} s: {len(estate.images)} AMIs, {len(estate.public)} public, "
            f"{len(estate.untrusted)} untrusted, {len(estate.trusted)} trusted, {len(estate.missing_tag)} missing "
            f"{REQUIRED_TAGS[-1]}",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
            workdir = Path(tmp)
            extra = shlex.split(args.scan_args)
            ours = run_amiguard(server, endpoint, workdir, throttle=False, timeout=args.timeout, extra=extra)
            if custodian is None:
                print_one("on the server's speed (no throttling)", ours)
            else:
                theirs = run_custodian(server, endpoint, custodian, workdir, throttle=False, timeout=args.timeout)
                print_pair("on the server's speed (no throttling)", ours, theirs)
                print(f"  custodian found: {judge_custodian(theirs, estate)}")
            print(f"  amiguard found: {judge_amiguard(ours, estate)}")
            if not args.skip_throttled:
                throttled(server, endpoint, custodian, workdir, estate, args, extra)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
