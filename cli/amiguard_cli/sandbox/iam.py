"""The IAM actions an AWS API call needs: what the sandbox notes per delivery and the role tests compare.

Mostly ``<signing name>:<operation>``; a DynamoDB TransactWriteItems has no action of its own and needs
the action of every item it writes.
"""

from __future__ import annotations

from typing import Any

TRANSACTION_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_actions(model: Any, params: dict[str, Any]) -> list[str]:
    """The actions for one call, from botocore's operation model and the call's parameters."""
    service = model.service_model.signing_name
    if service == "dynamodb" and model.name == "TransactWriteItems":
        return sorted(
            {f"dynamodb:{TRANSACTION_ITEM_ACTIONS[kind]}" for item in params.get("TransactItems", []) for kind in item}
        )
    return [f"{service}:{model.name}"]
