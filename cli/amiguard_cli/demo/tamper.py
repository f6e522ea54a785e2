"""Act: someone switches amiguard off quietly, throttling public_guard to zero. tamper_guard raises a critical
alert within seconds of CloudTrail's record; the next sweep, reading the deployment back, finds the gap too."""

from __future__ import annotations

from typing import Any

from amiguard_cli.demo.sweep import SCHEDULED_EVENT
from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import iam_user

INTRUDER = "mallory"


def _throttle_record(sandbox: Sandbox, function_arn: str) -> dict[str, Any]:
    """CloudTrail's record of PutFunctionConcurrency (the sandbox records only EC2's calls by itself)."""
    record = {
        "eventVersion": "1.10",
        "userIdentity": iam_user(INTRUDER, sandbox.account),
        "eventTime": "2026-11-28T09:12:44Z",
        "eventSource": "lambda.amazonaws.com",
        "eventName": "PutFunctionConcurrency20171031",
        "awsRegion": sandbox.home,
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-cli/2.15.30 md/Botocore#1.34.70",
        "requestParameters": {"functionName": function_arn, "reservedConcurrentExecutions": 0},
        "responseElements": {"reservedConcurrentExecutions": 0},
        "requestID": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140",
        "eventID": "6e4d3c2b-1a0f-4e9d-8c7b-a69584736251",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": sandbox.account,
        "eventCategory": "Management",
    }
    return {
        "version": "0",
        "id": "7f5e4d3c-2b1a-4f0e-9d8c-7b6a59584736",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.lambda",
        "account": sandbox.account,
        "time": "2026-11-28T09:12:44Z",
        "region": sandbox.home,
        "resources": [],
        "detail": record,
    }


def act(sandbox: Sandbox, timeline: Timeline) -> None:
    timeline.act("Switched off quietly: amiguard watches itself")
    stack = sandbox.stack()
    function, function_arn = stack.ref("PublicGuardFunction"), stack.attributes["PublicGuardFunction.Arn"]
    lambda_ = sandbox.internal_client("lambda")
    lambda_.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)
    timeline.step(INTRUDER, f"PutFunctionConcurrency {function} = 0: public_guard would never run again")
    sandbox.put_event(_throttle_record(sandbox, function_arn))
    timeline.settle()

    timeline.step("schedule", "the next sweep reads amiguard's own deployment back")
    event = SCHEDULED_EVENT | {"account": sandbox.account, "region": sandbox.home, "time": "2026-11-28T10:00:00Z"}
    timeline.delivery(sandbox.invoke("sweeper", dict(event) | {"id": "8a6f5e4d-3c2b-4a1f-8e9d-7c6b5a4f3e2d"}))
    for alert in sandbox.alerts():
        timeline.alert(alert)
    timeline.settle()
    lambda_.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=5)
    timeline.step("security team", f"PutFunctionConcurrency {function} = 5 again, as deployed")
