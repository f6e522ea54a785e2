"""What moto 5.2.5 lacks for DR replication, filled in with what EC2 documents (sandbox only).

moto's CopyImage takes SourceRegion, SourceImageId, Name and Description and nothing else: the copy has no
tags (neither ``TagSpecifications`` nor ``CopyImageTags``), is not encrypted, ignores ``ClientToken`` (two
calls, two copies) and is ``available`` at once. moto has no EnableImageDeprecation. This module, hooked
onto the sandbox's boto3 session, makes the copy what EC2 would make:

- ``ClientToken``: a repeated CopyImage with the same token in the same region returns the first copy's id
  and copies nothing (EC2 idempotency);
- ``TagSpecifications`` (``image``) and ``CopyImageTags`` (the source's user tags, never ``aws:``) tag the
  copy, the specified tags winning over copied ones;
- ``Encrypted``/``KmsKeyId`` mark the copy's snapshot encrypted; ``SourceImageId`` / ``SourceImageRegion``
  appear in DescribeImages, as EC2 reports them for copied AMIs;
- EnableImageDeprecation sets ``DeprecationTime``.

The copy still becomes ``available`` at once (moto); the sandbox's CloudTrail module emits the "EC2 AMI State
Change" event for it. Tests of what amiguard *sends* assert the request itself (botocore Stubber / event
hooks), never only this module's effects.
"""

from __future__ import annotations

from typing import Any

from amiguard_cli.sandbox.moto_gaps import CannedHttp, canned


def _backend(account: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][region]


class CopyImageFidelity:
    """botocore hooks making moto's CopyImage and EnableImageDeprecation behave like EC2's."""

    def __init__(self, account: str) -> None:
        self._account = account
        self._tokens: dict[tuple[str, str, str], str] = {}  # (account, region, client token) -> image id
        self.copies: list[dict[str, Any]] = []  # every CopyImage request that made a new copy

    def register(self, events: Any) -> None:
        events.register("provide-client-params.ec2.CopyImage", self._remember)
        events.register("before-call.ec2.CopyImage", self._idempotent_copy)
        events.register("after-call.ec2.CopyImage", self._complete_copy)
        events.register("before-call.ec2.EnableImageDeprecation", self._deprecate)

    def unregister(self, events: Any) -> None:
        events.unregister("provide-client-params.ec2.CopyImage", self._remember)
        events.unregister("before-call.ec2.CopyImage", self._idempotent_copy)
        events.unregister("after-call.ec2.CopyImage", self._complete_copy)
        events.unregister("before-call.ec2.EnableImageDeprecation", self._deprecate)

    def _account_of(self, context: dict[str, Any]) -> str:
        """The account the call is made in (organization mode: the signing credentials'), else the sandbox's."""
        return str((context.get("amiguard_caller") or {}).get("account") or self._account)

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["amiguard_copy_params"] = dict(params)

    def _idempotent_copy(
        self, params: Any, context: dict[str, Any], **_: Any
    ) -> tuple[CannedHttp, dict[str, Any]] | None:
        region = context.get("client_region") or "us-east-1"
        token = (params.get("body") or {}).get("ClientToken")
        if token and (self._account_of(context), region, token) in self._tokens:
            image_id = self._tokens[(self._account_of(context), region, token)]
            return canned({"ImageId": image_id})
        return None

    def _complete_copy(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        image_id = parsed.get("ImageId")
        request = context.get("amiguard_copy_params") or {}
        region = context.get("client_region") or "us-east-1"
        if not image_id or "Error" in parsed:
            return
        token = request.get("ClientToken")
        account = self._account_of(context)
        if token and (account, region, token) in self._tokens:
            return  # the idempotent repeat answered above: nothing new was made
        if token:
            self._tokens[(account, region, token)] = image_id
        self.copies.append({"region": region, "image_id": image_id, **request})
        backend = _backend(account, region)
        ami = backend.amis.get(image_id)
        if ami is None:
            return
        source_region = request.get("SourceRegion", region)
        source = _backend(account, source_region).amis.get(request.get("SourceImageId"))
        tags: dict[str, str] = {}
        if request.get("CopyImageTags") and source is not None:
            source_tags = _backend(account, source_region).tags.get(source.id, {})
            tags |= {key: value for key, value in source_tags.items() if not key.startswith("aws:")}
        for spec in request.get("TagSpecifications") or []:
            if spec.get("ResourceType") == "image":
                tags |= {tag["Key"]: tag.get("Value", "") for tag in spec.get("Tags") or []}
        if tags:
            backend.create_tags([image_id], tags)
        snapshot_tags = {
            tag["Key"]: tag.get("Value", "")
            for spec in request.get("TagSpecifications") or []
            if spec.get("ResourceType") == "snapshot"
            for tag in spec.get("Tags") or []
        }
        if snapshot_tags and ami.ebs_snapshot is not None:  # EC2 tags the copy's new snapshots as asked
            backend.create_tags([ami.ebs_snapshot.id], snapshot_tags)
        ami.source_image_id = request.get("SourceImageId")
        ami.source_image_region = source_region
        if request.get("Encrypted"):
            ami.ebs_snapshot.encrypted = True
            ami.ebs_snapshot.kms_key_id = request.get("KmsKeyId") or f"alias/aws/ebs ({region})"

    def _deprecate(self, params: Any, context: dict[str, Any], **_: Any) -> tuple[CannedHttp, dict[str, Any]]:
        region = context.get("client_region") or "us-east-1"
        body = params.get("body") or {}
        ami = _backend(self._account_of(context), region).amis.get(body.get("ImageId"))
        if ami is not None:
            ami.deprecation_time = str(body.get("DeprecateAt"))
        return canned({"Return": True})
