"""Every AWS call a function makes is allowed by its own role in template.yaml, and nothing more is granted.

The demo's scenarios run through the sandbox; each call a handler makes is noted as an IAM action. A new
call without a matching grant (or a grant nothing uses any more) turns this red before a deploy would fail.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from amiguard_cli.demo.scenario import ACTS, DEMO_SETTINGS, ORGANIZATION_ACTS
from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cfn import function_name, load_template
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user
from tests.samples import ROOT

# Granted for the Lambda service itself (logs, failure destination), not called by the code.
PLATFORM_ACTIONS = ("logs:", "sqs:SendMessage", "kms:Decrypt", "kms:GenerateDataKey")
# Used by EC2 on the function's behalf, never called by the code: tags CopyImage applies (ec2:CreateAction),
# KMS keys of encrypted copies (kms:ViaService), snapshots DeregisterImage(DeleteAssociatedSnapshots) deletes.
ON_BEHALF_CONDITIONS = ("ec2:CreateAction", "kms:ViaService")
ON_BEHALF_ACTIONS = ("ec2:DeleteSnapshot",)


# Grants whose calls the demo's story does not make, exercised under the same role by another sandbox suite:
# the outbox's retry reading an event's staged rows back (tests/integration/test_faults.py), and the sweep's count
# of instances using a stale AMI before it deprecates one (tests/integration/test_hygiene_sandbox.py).
EXERCISED_BY_FAULTS = {("public_guard", "dynamodb:BatchGetItem"), ("sweeper", "ec2:DescribeInstances")}


def _on_behalf(statement: dict[str, Any]) -> bool:
    keys = {key for condition in statement.get("Condition", {}).values() for key in condition}
    return any(key in keys for key in ON_BEHALF_CONDITIONS)


def role_actions(*, gated: bool = False) -> dict[str, set[str]]:
    """Function folder name → the actions its role allows; ``gated``: also those of its policies that exist
    only under a template condition (a ReplicaCleanup or TagEscalation the demo may not choose)."""
    resources: dict[str, Any] = load_template(ROOT / "template.yaml")["Resources"]
    granted: dict[str, set[str]] = {}
    for resource in resources.values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        role_id = properties["Role"]["Fn::GetAtt"][0]
        actions: set[str] = set()
        # The role's inline policies and its own RolePolicies: those without a template condition always (the
        # ledger's: see template.yaml), the condition-gated ones (ReplicaCleanup, TagEscalation) when ``gated``.
        documents = [policy["PolicyDocument"] for policy in resources[role_id]["Properties"].get("Policies", [])]
        documents += [
            other["Properties"]["PolicyDocument"]
            for other in resources.values()
            if (
                (other.get("Type") == "AWS::IAM::RolePolicy" and other["Properties"]["RoleName"] == {"Ref": role_id})
                or (other.get("Type") == "AWS::IAM::Policy" and {"Ref": role_id} in other["Properties"]["Roles"])
            )
            and (gated or "Condition" not in other)
        ]
        for document in documents:
            for statement in document["Statement"]:
                if statement["Effect"] == "Allow" and not _on_behalf(statement):
                    value = statement["Action"]
                    actions.update(value if isinstance(value, list) else [value])
        granted[function_name(properties["CodeUri"])] = actions
    return granted


def observed_calls() -> dict[str, set[str]]:
    calls: dict[str, set[str]] = defaultdict(set)
    with Sandbox(parameters=DEMO_SETTINGS) as sandbox:
        timeline = Timeline(sandbox, Console(file=open("/dev/null", "w")))  # noqa: SIM115 - silent timeline
        for act in ACTS:
            act(sandbox, timeline)
        deliveries = list(sandbox.deliveries)
        # EventBridge delivers at least once: each function's first alerting event again, as a retry would (the
        # outbox then looks for the event's pending alerts).
        first = {
            (d.function, d.rule): d
            for d in reversed(deliveries)
            if d.function != "notifier" and (d.result or {}).get("status") == "acted"
        }
        deliveries += [sandbox.invoke(function, d.event) for (function, _), d in sorted(first.items())]
        # Calls no act of the demo makes: snapshot block public access turned off (and back on).
        with acting_as(iam_user("dev-bob")):
            sandbox.client("ec2").disable_snapshot_block_public_access()
        deliveries += sandbox.run()
        # ... and a sweep that finds it off.
        sandbox.internal_client("ec2").disable_snapshot_block_public_access()
        sweep = sandbox.invoke("sweeper", _schedule(sandbox))
        assert sweep.error is None, sweep.error
        deliveries.append(sweep)
        for delivery in deliveries:
            calls[delivery.function].update(delivery.calls)
    # Organization mode: the calls made through a member role are authorized there against it (the sandbox
    # refuses what it does not allow); those made with the function's own role are checked here as above.
    with Sandbox(parameters=DEMO_SETTINGS, organization=True) as sandbox:
        timeline = Timeline(sandbox, Console(file=open("/dev/null", "w")))  # noqa: SIM115 - silent timeline
        for act in ORGANIZATION_ACTS:
            act(sandbox, timeline)
        for delivery in sandbox.deliveries:
            assert delivery.denied == [], f"{delivery.function} was refused {delivery.denied}"
            calls[delivery.function].update(delivery.calls)
    return calls


def _schedule(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "5a0c4e2f-0000-4000-8000-0000000000aa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": sandbox.account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": sandbox.home,
        "resources": [],
        "detail": {},
    }


def allowed(action: str, grants: set[str]) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), grant.lower()) for grant in grants)


def test_every_call_a_function_makes_is_granted_to_its_role_when_the_demo_runs():
    granted = role_actions(gated=True)
    for function, calls in observed_calls().items():
        missing = sorted(call for call in calls if not allowed(call, granted[function]))
        assert missing == [], f"{function} calls {missing} but its role does not allow them"


def test_no_role_grants_an_ec2_or_sns_action_its_function_never_calls_when_the_demo_runs():
    granted = role_actions()
    calls = observed_calls()
    for function, actions in granted.items():
        unused = sorted(
            action
            for action in actions
            if not action.startswith(PLATFORM_ACTIONS)
            and action not in ON_BEHALF_ACTIONS
            and (function, action) not in EXERCISED_BY_FAULTS
            and not any(fnmatch.fnmatchcase(call.lower(), action.lower()) for call in calls.get(function, ()))
        )
        assert unused == [], f"{function}'s role grants {unused}, which no scenario exercises"
