"""What moto lacks and the sandbox needs, filled in honestly: the real API shapes, minimal state.

- DescribeImages filter ``block-device-mapping.snapshot-id`` (moto refuses the filter as unimplemented).
- DescribeSnapshots ``OwnerIds`` and ``RestorableByUserIds`` (moto ignores both; ``all`` means public).
- DescribeImageAttribute on a deregistered AMI (moto fails with a KeyError; EC2 answers
  ``InvalidAMIID.NotFound``, or ``InvalidAMIID.Unavailable`` just after deregistration).
- DescribeImages ``IncludeDisabled`` (moto lists disabled AMIs always; EC2 only when it is true) and
  DisableImage removing every launch permission (EC2 makes a disabled AMI private).
- DescribeRegions: moto answers every partition's regions whatever ``AllRegions`` says, and has regions that
  need opting in (af-south-1, ap-southeast-3, eu-south-1) enabled. EC2 answers the caller's partition only,
  the enabled regions unless ``AllRegions``, and an account has none of the opt-in regions until it opts in.
- Image block public access (Get/Enable/DisableImageBlockPublicAccess): per-region state, the three
  operations added to moto's EC2 responses with the shapes EC2 documents (in process, and in the moto
  server ``amiguard scan`` and ``scripts/bench_scan.py`` talk to over HTTP); ``ManagedBy`` is ``account``
  unless a test sets the region as an organization's declarative policy would.
- EBS snapshot block public access (Get/Enable/DisableSnapshotBlockPublicAccess), the same way.
- RegisterImage ``BlockDeviceMappings``, ``VirtualizationType`` and ``RootDeviceName`` (moto ignores them and
  backs the AMI with a snapshot of its own): an AMI registered from a snapshot is backed by that snapshot, and its
  mapping reports ``Encrypted`` as the snapshot is, as DescribeImages does. An AMI registered without mappings
  keeps moto's own (which reports no ``Encrypted``: amiguard judges no encryption from it).

Tests of the adapters that call these use botocore's ``Stubber``; this module only keeps the demo and
``replay`` running end to end.
"""

from __future__ import annotations

from typing import Any, cast

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidAMIIdError, UnvailableAMIIdError
from moto.ec2.models.amis import Ami, AmiBackend
from moto.ec2.models.availability_zones_and_regions import Region
from moto.ec2.responses import EC2Response
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.elastic_block_store import ElasticBlockStore

_original_filter = Ami.get_filter_value
_original_image_attribute = AmiBackend.describe_image_attribute
_original_describe_images = AmisResponse.describe_images
_original_disable_image = AmiBackend.disable_image
_original_register_image = AmisResponse.register_image
_original_mappings = Ami.block_device_mappings


def _get_filter_value(self: Ami, filter_name: str, method_name: str | None = None) -> Any:
    if filter_name == "block-device-mapping.snapshot-id":
        return [mapping["Ebs"]["SnapshotId"] for mapping in self.block_device_mappings if "Ebs" in mapping]
    return _original_filter(self, filter_name, method_name)


def _describe_image_attribute(self: AmiBackend, ami_id: str, attribute_name: str) -> Any:
    if ami_id not in self.amis:
        raise UnvailableAMIIdError(ami_id) if ami_id in self.deleted_amis else InvalidAMIIdError(ami_id)
    return _original_image_attribute(self, ami_id, attribute_name)


def _describe_images(self: AmisResponse) -> ActionResult:
    result = _original_describe_images(self)
    if str(self._get_param("IncludeDisabled", "false")).lower() != "true":
        listed = cast(dict[str, list[Ami]], result.result)
        listed["Images"] = [image for image in listed["Images"] if image.state != "disabled"]
    return result


def _disable_image(self: AmiBackend, ami_id: str) -> None:
    _original_disable_image(self, ami_id)
    self.amis[ami_id].launch_permissions = []


def _describe_snapshots(self: ElasticBlockStore) -> ActionResult:
    snapshots = self.ec2_backend.describe_snapshots(
        snapshot_ids=self._get_param("SnapshotIds", []), filters=self._filters_from_querystring()
    )
    owners = {self.current_account if owner == "self" else owner for owner in self._get_param("OwnerIds", [])}
    if owners:
        snapshots = [snapshot for snapshot in snapshots if snapshot.owner_id in owners]
    restorable = set(self._get_param("RestorableByUserIds", []))
    if restorable:
        snapshots = [
            snapshot
            for snapshot in snapshots
            if ("all" in restorable and "all" in snapshot.create_volume_permission_groups)
            or restorable & snapshot.create_volume_permission_userids
        ]
    return ActionResult({"Snapshots": snapshots})


# Regions AWS launched after March 2019: disabled in an account until it opts in.
OPT_IN_REGIONS = frozenset(
    {
        "af-south-1", "ap-east-1", "ap-east-2", "ap-south-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
        "ap-southeast-6", "ap-southeast-7", "ca-west-1", "eu-central-2", "eu-south-1", "eu-south-2",
        "il-central-1", "me-central-1", "me-south-1", "mx-central-1",
    }
)  # fmt: skip
ENABLED_STATUSES = frozenset({"opt-in-not-required", "opted-in"})


def partition_of(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _describe_regions(self: EC2Response) -> ActionResult:
    names = set(self._get_param("RegionNames", []))
    opted_in: set[str] = getattr(self.ec2_backend, "amiguard_opted_in", set())
    regions = []
    for region in self.ec2_backend.describe_regions():
        if partition_of(region.name) != partition_of(self.region) or (names and region.name not in names):
            continue
        status = "opt-in-not-required"
        if region.name in OPT_IN_REGIONS:
            status = "opted-in" if region.name in opted_in else "not-opted-in"
        if names or self._get_param("AllRegions") in (True, "true") or status in ENABLED_STATUSES:
            regions.append(Region(region.name, region.endpoint, status))
    return ActionResult({"Regions": regions})


_BPA_DEFAULT = "block-new-sharing"


def _get_image_block_public_access_state(self: EC2Response) -> ActionResult:
    state = getattr(self.ec2_backend, "amiguard_image_block_public_access", _BPA_DEFAULT)
    managed_by = getattr(self.ec2_backend, "amiguard_image_block_public_access_managed_by", "account")
    return ActionResult({"ImageBlockPublicAccessState": state, "ManagedBy": managed_by})


def set_block_public_access_by_declarative_policy(
    account: str, region: str, *, image: str | None = None, snapshot: str | None = None
) -> None:
    """What an attached EC2 declarative policy does to the region: the image and/or EBS snapshot block public access
    state it sets, answered with ``ManagedBy=declarative-policy`` (the sandbox's stand-in for the management account;
    moto has no declarative policies)."""
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account][region]
    for kind, state in (("image", image), ("snapshot", snapshot)):
        if state is not None:
            setattr(backend, f"amiguard_{kind}_block_public_access", state)
            setattr(backend, f"amiguard_{kind}_block_public_access_managed_by", "declarative-policy")


def _enable_image_block_public_access(self: EC2Response) -> ActionResult:
    state = self._get_param("ImageBlockPublicAccessState") or _BPA_DEFAULT
    self.ec2_backend.amiguard_image_block_public_access = state
    return ActionResult({"ImageBlockPublicAccessState": state})


def _disable_image_block_public_access(self: EC2Response) -> ActionResult:
    self.ec2_backend.amiguard_image_block_public_access = "unblocked"
    return ActionResult({"ImageBlockPublicAccessState": "unblocked"})


_SNAPSHOT_BPA_DEFAULT = "block-new-sharing"  # on in the sandbox, as image block public access (EC2: off)


def _get_snapshot_block_public_access_state(self: EC2Response) -> ActionResult:
    state = getattr(self.ec2_backend, "amiguard_snapshot_block_public_access", _SNAPSHOT_BPA_DEFAULT)
    managed_by = getattr(self.ec2_backend, "amiguard_snapshot_block_public_access_managed_by", "account")
    return ActionResult({"State": state, "ManagedBy": managed_by})


def _enable_snapshot_block_public_access(self: EC2Response) -> ActionResult:
    state = self._get_param("State") or "block-new-sharing"
    self.ec2_backend.amiguard_snapshot_block_public_access = state
    return ActionResult({"State": state})


def _disable_snapshot_block_public_access(self: EC2Response) -> ActionResult:
    self.ec2_backend.amiguard_snapshot_block_public_access = "unblocked"
    return ActionResult({"State": "unblocked"})


def _register_image(self: AmisResponse) -> ActionResult:
    result = _original_register_image(self)
    ami = self.ec2_backend.amis[cast(dict[str, str], result.result)["ImageId"]]
    mappings = self._get_param("BlockDeviceMappings") or []
    if self._get_param("VirtualizationType"):
        ami.virtualization_type = self._get_param("VirtualizationType")
    if self._get_param("RootDeviceName"):
        ami.root_device_name = self._get_param("RootDeviceName")
    given = []
    for mapping in mappings:
        snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
        if snapshot_id:
            snapshot = self.ec2_backend.get_snapshot(snapshot_id)
            given.append((str(mapping.get("DeviceName")), snapshot))
    if given:
        ami.root_device_type = "ebs"
        ami.ebs_snapshot = given[0][1]
        ami.amiguard_mappings = given
    return result


def _block_device_mappings(self: Ami) -> list[dict[str, Any]]:
    given = getattr(self, "amiguard_mappings", None)
    if not given:
        return cast(list[dict[str, Any]], _original_mappings.fget(self))  # type: ignore[attr-defined]
    return [
        {
            "DeviceName": device,
            "Ebs": {
                "SnapshotId": snapshot.id,
                "VolumeSize": snapshot.volume.size,
                "DeleteOnTermination": True,
                "VolumeType": "gp3",
                "Encrypted": bool(snapshot.encrypted),
            },
        }
        for device, snapshot in given
    ]


def patch_moto() -> None:
    Ami.get_filter_value = _get_filter_value  # type: ignore[method-assign]
    AmiBackend.describe_image_attribute = _describe_image_attribute  # type: ignore[method-assign]
    ElasticBlockStore.describe_snapshots = _describe_snapshots  # type: ignore[method-assign]
    AmisResponse.describe_images = _describe_images  # type: ignore[method-assign]
    AmiBackend.disable_image = _disable_image  # type: ignore[method-assign]
    EC2Response.describe_regions = _describe_regions  # type: ignore[method-assign,assignment]
    EC2Response.get_image_block_public_access_state = _get_image_block_public_access_state  # type: ignore[attr-defined]
    EC2Response.enable_image_block_public_access = _enable_image_block_public_access  # type: ignore[attr-defined]
    EC2Response.disable_image_block_public_access = _disable_image_block_public_access  # type: ignore[attr-defined]
    EC2Response.get_snapshot_block_public_access_state = _get_snapshot_block_public_access_state  # type: ignore[attr-defined]
    EC2Response.enable_snapshot_block_public_access = _enable_snapshot_block_public_access  # type: ignore[attr-defined]
    EC2Response.disable_snapshot_block_public_access = _disable_snapshot_block_public_access  # type: ignore[attr-defined]
    AmisResponse.register_image = _register_image  # type: ignore[method-assign]
    Ami.block_device_mappings = property(_block_device_mappings)  # type: ignore[method-assign,assignment]


class CannedHttp:
    """The HTTP side of a response a ``before-call`` hook answers with (botocore reads only these)."""

    def __init__(self, status: int = 200) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.raw = None
        self.content = b""


def canned(parsed: dict[str, Any], status: int = 200) -> tuple[CannedHttp, dict[str, Any]]:
    """What a ``before-call`` hook returns to answer a call without sending it: (http, parsed response)."""
    return CannedHttp(status), {**parsed, "ResponseMetadata": {"HTTPStatusCode": status}}
