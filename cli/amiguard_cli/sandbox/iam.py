"""The IAM actions an AWS API call needs: what the sandbox notes per delivery, authorizes against the calling
function's role, and what the role tests compare.

Mostly ``<signing name>:<operation>``; a DynamoDB TransactWriteItems has no action of its own and needs
the action of every item it writes. :func:`authorizations` adds what IAM evaluates each action on: the
resource ARNs (EC2 images have no account in theirs), the request's condition keys, and what AWS authorizes
implicitly (the ``ec2:CreateTags`` of a create call's ``TagSpecifications``, with ``ec2:CreateAction``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TRANSACTION_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}

# EC2 resource id prefix -> the resource type in its ARN.
EC2_RESOURCE_TYPES = {
    "ami": "image",
    "snap": "snapshot",
    "i": "instance",
    "vol": "volume",
    "sg": "security-group",
    "subnet": "subnet",
    "vpc": "vpc",
    "eni": "network-interface",
    "lt": "launch-template",
}
# EC2 operations authorized on the image they name (ImageId).
EC2_IMAGE_OPERATIONS = frozenset(
    {
        "ModifyImageAttribute",
        "ResetImageAttribute",
        "EnableImageDeprecation",
        "DisableImageDeprecation",
        "EnableImage",
        "DisableImage",
        "DeregisterImage",
        "EnableImageDeregistrationProtection",
        "DisableImageDeregistrationProtection",
        "CancelImageLaunchPermission",
    }
)
# EC2 operations authorized on the snapshot they name (SnapshotId).
EC2_SNAPSHOT_OPERATIONS = frozenset({"ModifySnapshotAttribute", "ResetSnapshotAttribute", "DeleteSnapshot"})
# Calls IAM never refuses (no permission is needed).
UNAUTHORIZED_CALLS = frozenset({"sts:GetCallerIdentity"})
ANY_RESOURCE = "*"


def iam_actions(model: Any, params: dict[str, Any]) -> list[str]:
    """The actions for one call, from botocore's operation model and the call's parameters."""
    service = model.service_model.signing_name
    if service == "dynamodb" and model.name == "TransactWriteItems":
        return sorted(
            {f"dynamodb:{TRANSACTION_ITEM_ACTIONS[kind]}" for item in params.get("TransactItems", []) for kind in item}
        )
    return [f"{service}:{model.name}"]


@dataclass(frozen=True)
class Authorization:
    """One question IAM answers for a call: may the caller do ``action`` on ``resource`` in this context?

    ``resource`` is ``*`` for an action without resource-level permissions (only ``"Resource": "*"`` allows
    it); ``context`` holds the request's condition keys, each with its values.
    """

    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Caller:
    """Where a call is made: the account, the client's region, the partition."""

    account: str
    region: str
    partition: str = "aws"


def ec2_arn(resource_id: str, where: Caller, region: str | None = None) -> str:
    """The ARN of an EC2 resource by its id (AMIs carry no account in theirs)."""
    kind = EC2_RESOURCE_TYPES.get(resource_id.split("-", 1)[0], resource_id.split("-", 1)[0])
    owner = "" if kind == "image" else where.account
    return f"arn:{where.partition}:ec2:{region or where.region}:{owner}:{kind}/{resource_id}"


def _tag_context(tags: Any) -> dict[str, tuple[str, ...]]:
    context: dict[str, tuple[str, ...]] = {"aws:TagKeys": tuple(str(tag.get("Key")) for tag in tags or [])}
    for tag in tags or []:
        if "Value" in tag:
            context[f"aws:RequestTag/{tag['Key']}"] = (str(tag["Value"]),)
    return context


def _image_snapshots(account: str, region: str, image_id: str) -> list[str]:
    """The EBS snapshots behind an AMI, from moto's state (none when the AMI is unknown)."""
    from moto.ec2.models import ec2_backends

    image = ec2_backends[account][region].amis.get(image_id)
    mappings = getattr(image, "block_device_mappings", None) or []
    return sorted({str(m["Ebs"]["SnapshotId"]) for m in mappings if m.get("Ebs", {}).get("SnapshotId")})


def _ec2(
    operation: str, params: Mapping[str, Any], where: Caller, base: dict[str, tuple[str, ...]]
) -> list[Authorization]:
    action = f"ec2:{operation}"
    partition, region = where.partition, where.region
    found: list[Authorization] = []
    if operation in EC2_IMAGE_OPERATIONS and params.get("ImageId"):
        found.append(Authorization(action, ec2_arn(str(params["ImageId"]), where), base))
        if operation == "DeregisterImage" and params.get("DeleteAssociatedSnapshots"):
            # EC2 deletes each of the image's snapshots with the caller's permission to delete that snapshot.
            found.extend(
                Authorization("ec2:DeleteSnapshot", ec2_arn(sid, where), base)
                for sid in _image_snapshots(where.account, region, str(params["ImageId"]))
            )
    elif operation in EC2_SNAPSHOT_OPERATIONS and params.get("SnapshotId"):
        found.append(Authorization(action, ec2_arn(str(params["SnapshotId"]), where), base))
    elif operation in {"CreateTags", "DeleteTags"}:
        context = base | _tag_context(params.get("Tags"))
        found.extend(Authorization(action, ec2_arn(str(rid), where), context) for rid in params.get("Resources", []))
    elif operation == "CopyImage":
        source = ec2_arn(str(params.get("SourceImageId")), where, str(params.get("SourceRegion") or region))
        found.append(Authorization(action, source, base))
        found.append(Authorization(action, f"arn:{partition}:ec2:{region}::image/*", base))
    else:
        found.append(Authorization(action, ANY_RESOURCE, base))
    # Tags given at creation are authorized as ec2:CreateTags on the new resources, naming the create action.
    for spec in params.get("TagSpecifications") or []:
        kind = str(spec.get("ResourceType"))
        owner = "" if kind == "image" else where.account
        context = base | _tag_context(spec.get("Tags")) | {"ec2:CreateAction": (operation,)}
        found.append(Authorization("ec2:CreateTags", f"arn:{partition}:ec2:{region}:{owner}:{kind}/*", context))
    return found


def _dynamodb(
    operation: str, params: Mapping[str, Any], where: Caller, base: dict[str, tuple[str, ...]]
) -> list[Authorization]:
    def table(name: Any, index: Any = None) -> str:
        arn = f"arn:{where.partition}:dynamodb:{where.region}:{where.account}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    if operation == "TransactWriteItems":
        return [
            Authorization(f"dynamodb:{TRANSACTION_ITEM_ACTIONS[kind]}", table(body.get("TableName")), base)
            for item in params.get("TransactItems", [])
            for kind, body in item.items()
        ]
    if operation == "TransactGetItems":
        return [
            Authorization("dynamodb:GetItem", table(i["Get"].get("TableName")), base)
            for i in params.get("TransactItems", [])
        ]
    if operation in {"BatchWriteItem", "BatchGetItem"}:
        return [Authorization(f"dynamodb:{operation}", table(name), base) for name in params.get("RequestItems", {})]
    if "TableName" in params:
        return [Authorization(f"dynamodb:{operation}", table(params["TableName"], params.get("IndexName")), base)]
    return [Authorization(f"dynamodb:{operation}", ANY_RESOURCE, base)]


def authorizations(model: Any, params: Mapping[str, Any], where: Caller) -> list[Authorization]:
    """Every (action, resource, context) IAM evaluates for one call, the implicit ones included."""
    service = model.service_model.signing_name
    operation = model.name
    if f"{service}:{operation}" in UNAUTHORIZED_CALLS:
        return []
    base: dict[str, tuple[str, ...]] = {"aws:RequestedRegion": (where.region,)}
    if service == "ec2":
        return _ec2(operation, params, where, base | {"ec2:Region": (where.region,)})
    if service == "dynamodb":
        return _dynamodb(operation, params, where, base)
    action = f"{service}:{operation}"
    if service == "sns" and (params.get("TopicArn") or params.get("TargetArn")):
        return [Authorization(action, str(params.get("TopicArn") or params.get("TargetArn")), base)]
    if service == "secretsmanager" and params.get("SecretId"):
        secret = str(params["SecretId"])
        if not secret.startswith("arn:"):
            secret = f"arn:{where.partition}:secretsmanager:{where.region}:{where.account}:secret:{secret}-??????"
        return [Authorization(action, secret, base)]
    if service == "securityhub" and operation == "BatchImportFindings":
        products = sorted({str(finding.get("ProductArn")) for finding in params.get("Findings", [])})
        return [Authorization(action, product, base) for product in products]
    if service == "securityhub" and operation == "BatchUpdateFindings":
        return [
            Authorization(action, f"arn:{where.partition}:securityhub:{where.region}:{where.account}:hub/default", base)
        ]
    if service == "sts" and params.get("RoleArn"):
        return [Authorization(action, str(params["RoleArn"]), base)]
    if resource := _named_resource(service, params, where):
        return [Authorization(action, resource, base)]
    return [Authorization(action, ANY_RESOURCE, base)]


def _named_resource(service: str, params: Mapping[str, Any], where: Caller) -> str | None:
    """The ARN an EventBridge rule, Lambda function, SQS queue or CloudTrail trail call acts on."""
    prefix = f"arn:{where.partition}"
    if service == "events" and (rule := params.get("Name") or params.get("Rule")):
        rule = str(rule)
        return rule if rule.startswith("arn:") else f"{prefix}:events:{where.region}:{where.account}:rule/{rule}"
    if service == "lambda" and (function := params.get("FunctionName")):
        function = str(function)
        return (
            function
            if function.startswith("arn:")
            else f"{prefix}:lambda:{where.region}:{where.account}:function:{function}"
        )
    if service == "sqs" and (url := params.get("QueueUrl")):
        # https://sqs.<region>.amazonaws.com/<account>/<name>
        *_, host, account, name = str(url).split("/")
        return f"{prefix}:sqs:{host.split('.')[1]}:{account}:{name}"
    if service == "cloudtrail" and (trail := params.get("Name") or params.get("TrailName")):
        trail = str(trail)
        return (
            trail if trail.startswith("arn:") else f"{prefix}:cloudtrail:{where.region}:{where.account}:trail/{trail}"
        )
    return None
