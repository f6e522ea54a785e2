"""Turn each successful mutating EC2 call made in the sandbox into the CloudTrail record AWS would write.

moto emits no CloudTrail events. A botocore ``after-call`` hook sees every call, and this module writes
the record with CloudTrail's own field names and ``items`` wrappers (compare ``tests/fixtures/cloudtrail-samples``),
then puts it on moto's EventBridge in the call's region, as "AWS API Call via CloudTrail". For AMI
lifecycle calls it also emits the "EC2 AMI State Change" event EC2 sends when the image settles.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from amiguard.models.events import AMI_STATE_CHANGE_DETAIL_TYPE, CLOUDTRAIL_DETAIL_TYPE

ACCOUNT = "123456789012"


def iam_user(name: str, account: str = ACCOUNT) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDA" + uuid.uuid5(uuid.NAMESPACE_DNS, name).hex[:16].upper(),
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": "AKIA" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:16].upper(),
        "userName": name,
    }


def assumed_role(
    role_name: str, session: str, *, path: str = "/", account: str = ACCOUNT, source_identity: str | None = None
) -> dict[str, Any]:
    """A role session as CloudTrail records it (``source_identity``: the SourceIdentity it was assumed with)."""
    role_id = "AROA" + uuid.uuid5(uuid.NAMESPACE_DNS, role_name).hex[:16].upper()
    identity: dict[str, Any] = {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}",
        "accountId": account,
        "accessKeyId": "ASIA" + uuid.uuid5(uuid.NAMESPACE_URL, session).hex[:16].upper(),
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role_id,
                "arn": f"arn:aws:iam::{account}:role{path}{role_name}",
                "accountId": account,
                "userName": role_name,
            },
            "attributes": {"creationDate": _now(), "mfaAuthenticated": "false"},
        },
    }
    if source_identity:
        identity["sessionContext"]["sourceIdentity"] = source_identity
    return identity


DEFAULT_USER = "alice"
_identity: ContextVar[dict[str, Any] | None] = ContextVar("sandbox_identity", default=None)


@contextlib.contextmanager
def acting_as(identity: dict[str, Any]) -> Iterator[None]:
    """Every call made inside is recorded as made by ``identity``."""
    token = _identity.set(identity)
    try:
        yield
    finally:
        _identity.reset(token)


def current_identity() -> dict[str, Any]:
    return _identity.get() or iam_user(DEFAULT_USER)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lower(key: str) -> str:
    return key[:1].lower() + key[1:]


def _generic(value: Any) -> Any:
    """boto3 parameters in CloudTrail's style: lowerCamel keys, lists wrapped in ``items``."""
    if isinstance(value, Mapping):
        return {_lower(str(key)): _generic(item) for key, item in value.items()}
    if isinstance(value, list):
        return {"items": [_generic(item) for item in value]}
    return value


def _tags(tags: Any) -> list[dict[str, str]]:
    return [{"key": tag["Key"], "value": tag.get("Value", "")} for tag in tags or []]


def _tag_specifications(params: Mapping[str, Any]) -> dict[str, Any]:
    specs = params.get("TagSpecifications")
    if not specs:
        return {}
    items = [{"resourceType": spec.get("ResourceType"), "tags": _tags(spec.get("Tags"))} for spec in specs]
    return {"tagSpecificationSet": {"items": items}}


def _grant_items(grants: Any) -> dict[str, Any]:
    return {"items": [{_lower(key): value for key, value in grant.items()} for grant in grants or []]}


def _modify_image_attribute(p: Mapping[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"imageId": p.get("ImageId")}
    if "LaunchPermission" in p:
        request["launchPermission"] = {_lower(op): _grant_items(g) for op, g in p["LaunchPermission"].items()}
        request["attributeType"] = "launchPermission"
    elif "OperationType" in p:
        # The legacy form: recorded without attributeType, which is why public_guard decides from state.
        grants = [{"userId": user} for user in p.get("UserIds", [])] + [{"group": g} for g in p.get("UserGroups", [])]
        request["launchPermission"] = {p["OperationType"]: {"items": grants}}
    elif "Description" in p:
        request["description"] = {"value": p["Description"].get("Value")}
        request["attributeType"] = "description"
    else:
        request["attributeType"] = p.get("Attribute")
    return request


def _modify_snapshot_attribute(p: Mapping[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"snapshotId": p.get("SnapshotId"), "attributeType": "CREATE_VOLUME_PERMISSION"}
    if "CreateVolumePermission" in p:
        request["createVolumePermission"] = {
            _lower(op): _grant_items(g) for op, g in p["CreateVolumePermission"].items()
        }
    elif "OperationType" in p:
        grants = [{"userId": user} for user in p.get("UserIds", [])] + [{"group": g} for g in p.get("GroupNames", [])]
        request["createVolumePermission"] = {p["OperationType"]: {"items": grants}}
    return request


def _create_image(p: Mapping[str, Any]) -> dict[str, Any]:
    request = {_lower(k): v for k, v in p.items() if k in {"InstanceId", "Name", "Description", "NoReboot"}}
    return request | _tag_specifications(p)


def _copy_image(p: Mapping[str, Any]) -> dict[str, Any]:
    keys = {
        "SourceRegion",
        "SourceImageId",
        "Name",
        "Description",
        "Encrypted",
        "KmsKeyId",
        "ClientToken",
        "CopyImageTags",
    }
    return {_lower(k): v for k, v in p.items() if k in keys} | _tag_specifications(p)


def _register_image(p: Mapping[str, Any]) -> dict[str, Any]:
    request = {_lower(k): v for k, v in p.items() if k in {"Name", "Description", "Architecture", "RootDeviceName"}}
    if p.get("BlockDeviceMappings"):
        request["blockDeviceMapping"] = _generic(p["BlockDeviceMappings"])
    return request | _tag_specifications(p)


def _tag_change(p: Mapping[str, Any]) -> dict[str, Any]:
    tags = [{"key": t["Key"], **({"value": t["Value"]} if "Value" in t else {})} for t in p.get("Tags", [])]
    return {
        "resourcesSet": {"items": [{"resourceId": resource} for resource in p.get("Resources", [])]},
        "tagSet": {"items": tags},
    }


REQUEST_BUILDERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "ModifyImageAttribute": _modify_image_attribute,
    "ModifySnapshotAttribute": _modify_snapshot_attribute,
    "CreateImage": _create_image,
    "CopyImage": _copy_image,
    "RegisterImage": _register_image,
    "CreateTags": _tag_change,
    "DeleteTags": _tag_change,
}

# Calls whose response is just {"return": true} in the EC2 API.
_RETURNS_TRUE = {"ModifyImageAttribute", "ModifySnapshotAttribute", "CreateTags", "DeleteTags", "DeregisterImage"}

READ_ONLY_PREFIXES = ("Describe", "Get", "List")

# What the image's state settles to after each AMI lifecycle call (moto has images "available" at once).
STATE_AFTER = {
    "CreateImage": "available",
    "CopyImage": "available",
    "RegisterImage": "available",
    "DeregisterImage": "deregistered",
}


def cloudtrail_record(
    operation: str, params: Mapping[str, Any], response: Mapping[str, Any], *, region: str, identity: Mapping[str, Any]
) -> dict[str, Any]:
    """The CloudTrail record for one successful EC2 call."""
    request_id = str((response.get("ResponseMetadata") or {}).get("RequestId") or uuid.uuid4())
    builder = REQUEST_BUILDERS.get(operation)
    request = builder(params) if builder else _generic(dict(params))
    elements: dict[str, Any] = {"requestId": request_id}
    if operation in _RETURNS_TRUE:
        elements["_return"] = True
    if "ImageId" in response:
        elements["imageId"] = response["ImageId"]
    for key in ("ImageBlockPublicAccessState",):
        if key in response:
            elements[_lower(key)] = response[key]
    return {
        "eventVersion": "1.10",
        "userIdentity": dict(identity),
        "eventTime": _now(),
        "eventSource": "ec2.amazonaws.com",
        "eventName": operation,
        "awsRegion": region,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "Boto3/sandbox amiguard-sandbox",
        "requestParameters": request or None,
        "responseElements": elements,
        "requestID": request_id,
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": identity.get("accountId", ACCOUNT),
        "eventCategory": "Management",
    }


def ami_state_change(image_id: str, state: str) -> dict[str, Any]:
    """The detail of an "EC2 AMI State Change" event."""
    return {"RequestId": str(uuid.uuid4()), "ImageId": image_id, "State": state, "ErrorMessage": ""}


class CloudTrailRecorder:
    """A botocore hook pair: remember each EC2 call's parameters, then record the call once it succeeded."""

    def __init__(self, publish: Callable[[str, str, dict[str, Any], str], None]) -> None:
        # publish(region, detail_type, detail, account) puts one event on the account's default bus in the region.
        # Who made a call is the sandbox's to say (``context["amiguard_caller"]``: the account and identity of the
        # credentials that signed it); without it, the identity :func:`acting_as` set.
        self._publish = publish
        self.records: list[dict[str, Any]] = []

    def register(self, events: Any) -> None:
        events.register("provide-client-params.ec2.*", self._remember_params)
        events.register("after-call.ec2.*", self._record)

    def unregister(self, events: Any) -> None:
        events.unregister("provide-client-params.ec2.*", self._remember_params)
        events.unregister("after-call.ec2.*", self._record)

    def _remember_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["amiguard_params"] = dict(params)

    def _record(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        operation = model.name
        if operation.startswith(READ_ONLY_PREFIXES) or getattr(http_response, "status_code", 200) >= 300:
            return
        if "Error" in parsed:
            return
        region = context.get("client_region") or "us-east-1"
        identity = (context.get("amiguard_caller") or {}).get("identity") or current_identity()
        record = cloudtrail_record(
            operation, context.get("amiguard_params", {}), parsed, region=region, identity=identity
        )
        account = str(record["recipientAccountId"])
        self.records.append(record)
        self._publish(region, CLOUDTRAIL_DETAIL_TYPE, record, account)
        state = STATE_AFTER.get(operation)
        image_id = parsed.get("ImageId") or context.get("amiguard_params", {}).get("ImageId")
        if state and image_id:
            self._publish(region, AMI_STATE_CHANGE_DETAIL_TYPE, ami_state_change(image_id, state), account)


def to_json(detail: Mapping[str, Any]) -> str:
    return json.dumps(detail, default=str)
