"""Which regions exist and which this account has enabled (DescribeRegions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

ENABLED = frozenset({"opt-in-not-required", "opted-in"})


def region_opt_in_status(ec2: EC2Client) -> dict[str, str]:
    """Every region of the partition with its opt-in status (``not-opted-in`` regions cannot be called)."""
    regions = ec2.describe_regions(AllRegions=True)["Regions"]
    return {str(region["RegionName"]): str(region.get("OptInStatus", "opt-in-not-required")) for region in regions}


def enabled_regions(ec2: EC2Client) -> list[str]:
    """The regions this account can use."""
    return sorted(name for name, status in region_opt_in_status(ec2).items() if status in ENABLED)
