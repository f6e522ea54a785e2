"""Cold start and API calls per event for each function, against baselines measured in the same run.

Not a test: it prints ratios. Cold start = a fresh Python process that imports the function's handler and
handles one real-shaped event against a moto server on loopback (wall and CPU time of the whole process,
median of N), with the environment template.yaml gives the function (its default parameters, ``DrRegions``
set; the layer's /opt/python paths point into this checkout). Floor = a fresh process that imports boto3 and
makes one EC2 client, on botocore's full data (the target's floor) and on the trimmed models the layer ships
(``AWS_DATA_PATH``: what is left once amiguard's own data trimming is granted), run alternately with the
function's runs, so a machine that slows down or speeds up during the run moves every side alike. The layer
is byte-compiled first, as ``sam build`` ships it. API calls are counted by
operation from botocore's ``after-call`` events while the handler runs once in-process, and the DynamoDB write
units those calls cost (computed from item sizes, amiguard_cli.sandbox.capacity) per alert published.

Usage: python scripts/bench.py [--runs 7]
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import io
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from amiguard_cli.sandbox.account import ALERT_TOPIC_ID, DEDUP_KEY_ID, LAMBDA_LAYER_PREFIX, LEDGER_TABLE_ID
from amiguard_cli.sandbox.capacity import WriteUnitMeter
from amiguard_cli.sandbox.cfn import (
    Stack,
    deployed_environment,
    load_template,
    parameter_values,
    role_arns,
    table_definition,
)

ROOT = Path(__file__).resolve().parents[1]
logging.getLogger("werkzeug").setLevel(logging.ERROR)
REGION = "us-east-1"
ACCOUNT = "123456789012"
LEDGER_TABLE = "amiguard-ledger"
HANDLER_OUTPUT = io.StringIO()  # what the in-process runs print (the loggers keep this stream once made)

# Both sides end by reporting the CPU time the process has used so far and the wall clock: the cold start ends
# when the first event has been handled (or the EC2 client made), not when the interpreter has torn down.
REPORT = """
print(json.dumps({{"cpu": time.process_time(), "at": time.time(), **phases}}), file=sys.stderr)
"""

FLOOR = (
    """
import json, sys, time
phases = {{}}
import boto3; boto3.client('ec2', region_name='us-east-1')
"""
    + REPORT
).format()

CHILD = (
    """
import json, sys, time
start = time.perf_counter()
sys.path.insert(0, {function_dir!r})
import app
imported = time.perf_counter()
import boto3
acted = []  # when the first remediating EC2 call returned: what ends the exposure
boto3._get_default_session().events.register(
    "after-call.ec2.*",
    lambda model, **_: acted.append(time.perf_counter()) if not model.name.startswith(("Describe", "Get")) else None,
)
app.lambda_handler(json.loads({event!r}), type("Context", (), {{
    "function_name": "bench", "memory_limit_in_mb": 256, "aws_request_id": "r",
    "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
    "get_remaining_time_in_millis": lambda self: 60000}})())
phases = {{"import": imported - start, "first_event": time.perf_counter() - imported,
          "acted": (acted[0] - start) if acted else None}}
"""
    + REPORT
)


@dataclass
class Bench:
    """One function's benchmark: how to prepare its event (called before every run) and its call targets."""

    function: str
    label: str
    prepare: Callable[[Any, dict[str, str]], dict[str, Any]]
    targets: str
    member: bool = False  # organization mode: the event is a member account's, acted on through its member role


def cloudtrail_event(name: str, params: dict[str, Any]) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "version": "0",
        "id": "bench",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": now,
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.10",
            "eventSource": "ec2.amazonaws.com",
            "eventName": name,
            "awsRegion": REGION,
            "eventTime": now,
            "eventID": f"bench-{time.time_ns()}",
            "recipientAccountId": "123456789012",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/dev-bob"},
            "requestParameters": params,
            "responseElements": {"_return": True},
        },
    }


def public_share(ec2: Any, state: dict[str, str]) -> dict[str, Any]:
    """A new AMI made public: every run has the same work to do, and a new finding (no de-duplication)."""
    instance = state.get("instance")
    if instance is None:
        instance = state["instance"] = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][
            0
        ]["InstanceId"]
    state["image"] = ec2.create_image(InstanceId=instance, Name=f"bench-image-{time.time_ns()}")["ImageId"]
    ec2.modify_image_attribute(ImageId=state["image"], LaunchPermission={"Add": [{"Group": "all"}]})
    return cloudtrail_event(
        "ModifyImageAttribute",
        {
            "imageId": state["image"],
            "attributeType": "launchPermission",
            "launchPermission": {"add": {"items": [{"group": "all"}]}},
        },
    )


def in_account(event: dict[str, Any], account: str) -> dict[str, Any]:
    """``event`` as a member account's CloudTrail records it and forwards it to the central bus."""
    event["account"] = event["detail"]["recipientAccountId"] = account
    event["detail"]["userIdentity"] = {"type": "IAMUser", "arn": f"arn:aws:iam::{account}:user/dev-bob"}
    return event


def approval(ec2: Any, state: dict[str, str]) -> dict[str, Any]:
    """A new AMI approved for DR (a fresh one each run, so every run copies to both DR regions)."""
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = ec2.create_image(InstanceId=instance, Name=f"bench-golden-{time.time_ns()}")["ImageId"]
    ec2.create_tags(Resources=[image], Tags=[{"Key": "amiguard:approved", "Value": "true"}])
    state["image"] = image
    return cloudtrail_event(
        "CreateTags",
        {
            "resourcesSet": {"items": [{"resourceId": image}]},
            "tagSet": {"items": [{"key": "amiguard:approved", "value": "true"}]},
        },
    )


def _new_image(ec2: Any, state: dict[str, str], tags: list[dict[str, str]]) -> dict[str, Any]:
    """A fresh AMI from an untagged instance (a new one per run, so every run has the same work to do)."""
    if "instance" not in state:
        state["instance"] = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0][
            "InstanceId"
        ]
    spec = [{"ResourceType": "image", "Tags": tags}] if tags else []
    image_id = ec2.create_image(InstanceId=state["instance"], Name=f"bench-{time.time_ns()}", TagSpecifications=spec)[
        "ImageId"
    ]
    event = cloudtrail_event("CreateImage", {"instanceId": state["instance"], "name": "bench"})
    event["detail"]["responseElements"] = {"requestId": "bench", "imageId": image_id}
    return event


def compliant_image(ec2: Any, state: dict[str, str]) -> dict[str, Any]:
    """CreateImage with the required tags given at creation: auto-tags and snapshot tags only."""
    return _new_image(ec2, state, [{"Key": "Owner", "Value": "bob"}, {"Key": "CostCenter", "Value": "cc-1"}])


def untagged_image(ec2: Any, state: dict[str, str]) -> dict[str, Any]:
    """CreateImage without tags from an untagged instance: inheritance looked up, violation tagged, alert."""
    return _new_image(ec2, state, [])


BENCHES: list[Bench] = [
    Bench(
        "public_guard",
        "public-share event",
        public_share,
        "cold start <= 1.3x floor; <= 2 EC2 + 1 SNS calls; DynamoDB 2 PutItem, 2 UpdateItem, Query, BatchGetItem",
    ),
    Bench(
        "public_guard",
        "public-share, member",
        public_share,
        "cold start <= 1.3x floor; as above + 1 STS AssumeRole (the member role) + 1 Organizations DescribeAccount",
        member=True,
    ),
    Bench(
        "dr_replicator",
        "approval, 2 DR regions",
        approval,
        "cold start <= 1.3x floor; 1 + 2 per region EC2, 1 + 1 per region DynamoDB, 1 SNS per region",
    ),
    Bench(
        "tag_enforcer",
        "compliant CreateImage",
        compliant_image,
        "cold start <= 1.3x floor; <= 3 EC2 calls; 1 DynamoDB Query (the event's pending alerts)",
    ),
    Bench("tag_enforcer", "untagged CreateImage", untagged_image, "cold start <= 1.3x floor; 3 EC2 + 1 SNS calls"),
]
PARAMETERS = {"DrRegions": "us-west-2,eu-west-1"}  # as `sam deploy --parameter-overrides`; the rest: defaults


@dataclass
class Run:
    wall: float  # seconds from spawning the process to the end of the cold start
    cpu: float  # user + system seconds the process used by then: steadier than wall time on a busy machine
    cpu_with_exit: float  # the whole process, interpreter shutdown included (which no Lambda cold start pays)


def timed(code: str, env: dict[str, str], phases: list[dict[str, float]] | None = None) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawned = time.time()
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    if phases is not None:
        phases.append(report)
    whole = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Run(report["at"] - spawned, report["cpu"], whole)


def function_environment(template: dict[str, Any], function: str, stack: Stack) -> dict[str, str]:
    """``function``'s variables as deployed, its layer paths (AWS_DATA_PATH) pointing into this checkout."""
    layer = str(ROOT / "layers" / "amiguard") + "/"
    return {
        key: value.replace(LAMBDA_LAYER_PREFIX, layer, 1) if value.startswith(LAMBDA_LAYER_PREFIX) else value
        for key, value in deployed_environment(template, function, stack).items()
    }


def median_run(runs: list[Run]) -> Run:
    return Run(*(statistics.median(getattr(r, name) for r in runs) for name in ("wall", "cpu", "cpu_with_exit")))


def count_calls(bench: Bench, prepare: Callable[[], str], env: dict[str, str], meter: WriteUnitMeter) -> Counter[str]:
    """Run the handler once in this process and count its API calls by service and operation (and, in
    ``meter``, the DynamoDB write units they cost)."""
    calls: Counter[str] = Counter()
    meter.reset()
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]
            "after-call.*.*", lambda model, **_: calls.update([f"{model.service_model.service_id} {model.name}"])
        )
        meter.register(boto3.DEFAULT_SESSION.events)  # type: ignore[union-attr]
        sys.path.insert(0, str(ROOT / "functions" / bench.function))
        import importlib

        event = json.loads(prepare())
        context = type(
            "C",
            (),
            {
                "function_name": "bench",
                "memory_limit_in_mb": 256,
                "aws_request_id": "r",
                "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
                "get_remaining_time_in_millis": lambda self: 60000,
            },
        )()
        with contextlib.redirect_stdout(HANDLER_OUTPUT):  # its logs and metrics: the table stays readable
            app = importlib.reload(importlib.import_module("app"))
            app.lambda_handler(event, context)
    finally:
        sys.path.pop(0)
        sys.modules.pop("app", None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    compileall.compile_dir(ROOT / "layers" / "amiguard" / "amiguard", quiet=1)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # What Lambda's runtime adds to the template's variables (and the moto server standing in for AWS).
    base_env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "PYTHONPATH": str(ROOT / "layers" / "amiguard"),
    }
    session = boto3.Session(region_name=REGION, aws_access_key_id="bench", aws_secret_access_key="bench")
    ec2 = session.client("ec2", endpoint_url=endpoint)
    topic = session.client("sns", endpoint_url=endpoint).create_topic(Name="amiguard-alerts")["TopicArn"]
    # Organization mode: the stack's account manages an organization with one member, where the member bench acts.
    organizations = session.client("organizations", endpoint_url=endpoint)
    organization = organizations.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    member = organizations.create_account(AccountName="prod", Email="prod@example.com")["CreateAccountStatus"][
        "AccountId"
    ]
    access = session.client("sts", endpoint_url=endpoint).assume_role(
        RoleArn=f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole", RoleSessionName="bench-setup"
    )["Credentials"]
    member_ec2 = boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=access["AccessKeyId"],
        aws_secret_access_key=access["SecretAccessKey"],
        aws_session_token=access["SessionToken"],
    )
    template = load_template(ROOT / "template.yaml")
    ledger = table_definition(template, "LedgerTable")
    if ledger is None:
        raise SystemExit("template.yaml has no LedgerTable")
    session.client("dynamodb", endpoint_url=endpoint).create_table(TableName=LEDGER_TABLE, **ledger)
    meter = WriteUnitMeter(session.client("dynamodb", endpoint_url=endpoint))
    # As deployed: the alert dedup key is the stack's secret (one GetSecretValue per cold start that alerts).
    dedup_key = session.client("secretsmanager", endpoint_url=endpoint).create_secret(
        Name="amiguard-alert-dedup-key", SecretString="bench-" + "k" * 58
    )["ARN"]
    # The stack as CloudFormation resolves it: each function gets the template's environment, nothing set by hand.
    resources = {ALERT_TOPIC_ID: topic, LEDGER_TABLE_ID: LEDGER_TABLE, DEDUP_KEY_ID: dedup_key}
    roles = {f"{logical_id}.Arn": arn for logical_id, arn in role_arns(template, ACCOUNT).items()}
    stacks = {
        member_mode: Stack(
            parameter_values(template, PARAMETERS | ({"OrganizationId": organization} if member_mode else {})),
            resources,
            ACCOUNT,
            REGION,
            attributes=roles,
        )
        for member_mode in (False, True)
    }
    stack = stacks[False]
    # The floors and the functions on botocore's full data: nothing of amiguard's in the environment.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AMIGUARD_", "AWS_", "POWERTOOLS_"))}
    floor_env = inherited | base_env
    data_path = function_environment(template, BENCHES[0].function, stack).get("AWS_DATA_PATH")
    if data_path is None:
        raise SystemExit("template.yaml's Globals set no AWS_DATA_PATH")
    trimmed_floor_env = floor_env | {"AWS_DATA_PATH": data_path}

    try:
        print(
            "cold start: a fresh process, import + first event, with the function's environment from template.yaml"
            " (AWS_DATA_PATH: the trimmed service models); floor: a fresh process, import boto3 + one EC2 client,"
            " on botocore's full data (the target's floor) and on the trimmed data (AWS_DATA_PATH). Each floor run"
            " alternates with the function's runs so all see the same machine. CPU and wall to the end of the cold"
            f" start; medians of {args.runs}. 'vs trimmed': CPU against the trimmed floor; 'full models': the"
            " function without AWS_DATA_PATH, CPU against the full floor."
        )
        print()
        print(
            f"{'function':<14} {'event':<22} {'floor CPU':>9} {'trimmed':>9} {'cold CPU':>9} {'ratio CPU':>9}"
            f" {'ratio wall':>10} {'incl. exit':>10} {'vs trimmed':>10} {'full models':>11}"
        )
        for bench in BENCHES:
            state: dict[str, str] = {}
            deployed_env = floor_env | function_environment(template, bench.function, stacks[bench.member])
            bench_ec2 = member_ec2 if bench.member else ec2

            def prepare(bench: Bench = bench, bench_ec2: Any = bench_ec2, state: dict[str, str] = state) -> str:
                event = bench.prepare(bench_ec2, state)
                return json.dumps(in_account(event, member) if bench.member else event)

            full_env = {k: v for k, v in deployed_env.items() if k != "AWS_DATA_PATH"}
            floors: list[Run] = []
            trimmed_floors: list[Run] = []
            samples: list[Run] = []
            full_models: list[Run] = []
            phases: list[dict[str, float]] = []
            for _ in range(args.runs + 1):  # the first round warms the OS file cache and is dropped
                floors.append(timed(FLOOR, floor_env))
                trimmed_floors.append(timed(FLOOR, trimmed_floor_env))
                event = prepare()
                code = CHILD.format(function_dir=str(ROOT / "functions" / bench.function), event=event)
                samples.append(timed(code, deployed_env, phases))
                event = prepare()
                code = CHILD.format(function_dir=str(ROOT / "functions" / bench.function), event=event)
                full_models.append(timed(code, full_env))
            floor, cold, full = median_run(floors[1:]), median_run(samples[1:]), median_run(full_models[1:])
            trimmed = median_run(trimmed_floors[1:])
            imports = statistics.median(p["import"] for p in phases[1:])
            first = statistics.median(p["first_event"] for p in phases[1:])
            acted = [p["acted"] for p in phases[1:] if p.get("acted") is not None]
            acted_note = f"; first remediation {statistics.median(acted) * 1000:.0f} ms after start" if acted else ""
            calls = count_calls(bench, prepare, {k: v for k, v in deployed_env.items() if k not in inherited}, meter)
            summary = ", ".join(f"{n} {op}" for op, n in sorted(calls.items()))
            alerts = calls["SNS Publish"]
            alerting = meter.by_row["FINDING"] + meter.by_row["DEDUP"]  # the alert path's rows
            per_alert = f"; alert path {alerting / alerts:.1f} per alert (target <= 6)" if alerts else ""
            rows = ", ".join(f"{n} {kind}" for kind, n in sorted(meter.by_row.items()))
            print(
                f"{bench.function:<14} {bench.label:<22} {floor.cpu * 1000:>6.0f} ms {trimmed.cpu * 1000:>6.0f} ms"
                f" {cold.cpu * 1000:>6.0f} ms {cold.cpu / floor.cpu:>8.2f}x {cold.wall / floor.wall:>9.2f}x"
                f" {cold.cpu_with_exit / floor.cpu_with_exit:>9.2f}x {cold.cpu / trimmed.cpu:>9.2f}x"
                f" {full.cpu / floor.cpu:>10.2f}x"
            )
            print(f"{'':<14} calls: {summary}")
            print(f"{'':<14} DynamoDB write units: {meter.total} ({rows}) for {alerts} alert(s){per_alert}")
            print(
                f"{'':<14} import {imports * 1000:.0f} ms + first event {first * 1000:.0f} ms{acted_note};"
                f" target: {bench.targets}"
            )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
