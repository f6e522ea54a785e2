"""The dashboard's "Last findings" query reads keys the functions really log with each finding."""

from __future__ import annotations

import json
from typing import Any

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user
from tests.dashboard import last_findings_query, query_finding_keys


def logged_findings(output: str) -> list[dict[str, Any]]:
    """The structured log lines (Powertools' JSON) that carry a finding."""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if "finding" in line]


def test_last_findings_query_names_keys_the_functions_log_when_they_find_something() -> None:
    # Given an untagged AMI made public (tag_enforcer and public_guard each raise a finding)
    with Sandbox(parameters={"Mode": "enforce"}) as sb:
        ec2 = sb.client("ec2")
        with acting_as(iam_user("dev-bob")):
            instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
            image_id = ec2.create_image(InstanceId=instance, Name="payments-api-2026-11")["ImageId"]
            ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
        # When the functions handle the events
        deliveries = sb.run()
        query = last_findings_query(sb.template)
    # Then each function's log line of a finding has every key the query names, the AMI and what was done
    logged = {d.function: logged_findings(d.output) for d in deliveries if logged_findings(d.output)}
    assert {"tag_enforcer", "public_guard"} <= set(logged)
    keys = query_finding_keys(query)
    assert {"image_id", "type", "action"} <= keys
    for function, lines in logged.items():
        for line in lines:
            assert keys - set(line["finding"]) == set(), f"{function} does not log these keys: {line}"
    public = [line["finding"] for line in logged["public_guard"]]
    assert {(f["image_id"], f["type"], f["action"]) for f in public} == {(image_id, "public-share", "revoked")}
