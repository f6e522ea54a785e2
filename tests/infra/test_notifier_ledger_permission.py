"""The notifier may write only its own POSTED# rows of the ledger, and only when Slack is configured."""

from __future__ import annotations

from typing import Any

from amiguard.models.ledger_keys import POSTED_PREFIX
from amiguard_cli.sandbox.cfn import load_template
from tests.samples import ROOT


def _notifier_ledger_statements() -> list[dict[str, Any]]:
    resources: dict[str, Any] = load_template(ROOT / "template.yaml")["Resources"]
    statements = [
        (name, statement)
        for name, resource in resources.items()
        if resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::RolePolicy")
        and (name == "NotifierRole" or resource["Properties"].get("RoleName") == {"Ref": "NotifierRole"})
        for policy in (resource["Properties"].get("Policies") or [resource["Properties"]])
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    return [
        {"resource": name, "condition": resources[name].get("Condition"), **statement}
        for name, statement in statements
        if any(str(action).startswith("dynamodb:") for action in _list(statement["Action"]))
    ]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_notifier_writes_only_posted_rows_when_slack_is_configured() -> None:
    [statement] = _notifier_ledger_statements()

    assert _list(statement["Action"]) == ["dynamodb:PutItem"]
    assert statement["Resource"] == {"Fn::GetAtt": ["LedgerTable", "Arn"]}
    assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [POSTED_PREFIX + "*"]}}
    assert statement["condition"] == "HasSlackWebhook"
