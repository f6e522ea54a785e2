"""Which AWS errors mean "the thing is gone or not ours" (drop the event) and which must be retried."""

from __future__ import annotations

from botocore.exceptions import ClientError

# The resource no longer exists, or is not visible to this account: nothing to remediate.
GONE = frozenset(
    {
        "InvalidAMIID.NotFound",
        "InvalidAMIID.Unavailable",
        "InvalidAMIID.Malformed",
        "InvalidSnapshot.NotFound",
        "InvalidSnapshotID.Malformed",
        "AuthFailure",  # DescribeImageAttribute on an AMI another account owns
    }
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_gone(error: ClientError) -> bool:
    return error_code(error) in GONE
