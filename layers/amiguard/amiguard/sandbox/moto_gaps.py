"""What moto lacks and the sandbox needs, filled in honestly: the real API shapes, minimal state.

- DescribeImages filter ``block-device-mapping.snapshot-id`` (moto raises FilterNotImplementedError).
- Image block public access (Get/Enable/DisableImageBlockPublicAccess): per-region state, answered from
  a ``before-call`` hook with the response EC2 documents.

Tests of the adapters that call these use botocore's ``Stubber``; this module only keeps the demo and
``replay`` running end to end.
"""

from __future__ import annotations

from typing import Any, ClassVar

from moto.ec2.models.amis import Ami

_original_filter = Ami.get_filter_value


def _get_filter_value(self: Ami, filter_name: str, method_name: str | None = None) -> Any:
    if filter_name == "block-device-mapping.snapshot-id":
        return [mapping["Ebs"]["SnapshotId"] for mapping in self.block_device_mappings if "Ebs" in mapping]
    return _original_filter(self, filter_name, method_name)


def patch_moto() -> None:
    Ami.get_filter_value = _get_filter_value  # type: ignore[method-assign]


class _Http:
    status_code = 200
    headers: ClassVar[dict[str, str]] = {}
    raw = None
    content = b""


class ImageBlockPublicAccess:
    """Per-region image block public access state; new accounts start with ``block-new-sharing``."""

    OPERATIONS = ("GetImageBlockPublicAccessState", "EnableImageBlockPublicAccess", "DisableImageBlockPublicAccess")

    def __init__(self) -> None:
        self.state: dict[str, str] = {}

    def register(self, events: Any) -> None:
        for operation in self.OPERATIONS:
            events.register(f"before-call.ec2.{operation}", self._answer)

    def unregister(self, events: Any) -> None:
        for operation in self.OPERATIONS:
            events.unregister(f"before-call.ec2.{operation}", self._answer)

    def _answer(self, model: Any, params: Any, context: dict[str, Any], **_: Any) -> tuple[_Http, dict[str, Any]]:
        region = context.get("client_region") or "us-east-1"
        if model.name == "EnableImageBlockPublicAccess":
            self.state[region] = "block-new-sharing"
        elif model.name == "DisableImageBlockPublicAccess":
            self.state[region] = "unblocked"
        state = self.state.get(region, "block-new-sharing")
        return _Http(), {"ImageBlockPublicAccessState": state, "ResponseMetadata": {"HTTPStatusCode": 200}}
