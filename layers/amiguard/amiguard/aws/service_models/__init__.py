"""Trimmed botocore service models: the operations amiguard's functions call, and nothing else.

To make a client, botocore loads the service's whole model: EC2's (700 operations, 550 KB compressed)
costs ~90 ms of CPU on every cold start, more than everything amiguard itself imports; and the endpoint
data of every AWS service (``endpoints.json``, 1.2 MB) another ~20 ms. The template sets ``AWS_DATA_PATH``
to this folder, so botocore finds these files first; the model of any other service (Secrets Manager, for
the notifier's webhook), and every service's paginators, waiters and endpoint rule set, fall through to
botocore's own data.

The JSON files are generated from the pinned botocore by ``scripts/gen_service_models.py`` (``make
service-models``) with operations, shapes and metadata unchanged, documentation removed, and the
endpoint data of ``ENDPOINT_SERVICES`` only. Tests fail when they drift from botocore, when the runtime
calls an operation, paginator or waiter missing here or makes a client for a service missing from
``ENDPOINT_SERVICES`` (both read from its syntax tree), or when a request would be sent or signed
differently from botocore's full data, in any region of any partition.
The sandbox makes the handlers' clients the same way; the CLI and the scenario's people use botocore's
full data.
"""

from __future__ import annotations

# Every operation the adapters in amiguard.aws call, per service (what the IAM roles grant, seen from the code).
OPERATIONS: dict[str, tuple[str, ...]] = {
    "ec2": (
        "CopyImage",
        "CreateTags",
        "DeleteTags",
        "DeregisterImage",
        "DescribeImageAttribute",
        "DescribeImages",
        "DescribeInstances",
        "DescribeRegions",
        "DescribeSnapshotAttribute",
        "DescribeSnapshots",
        "DisableImage",
        "EnableImageBlockPublicAccess",
        "EnableImageDeprecation",
        "EnableSnapshotBlockPublicAccess",
        "GetImageBlockPublicAccessState",
        "GetSnapshotBlockPublicAccessState",
        "ModifyImageAttribute",
        "ModifySnapshotAttribute",
    ),
    "sns": ("Publish",),
    "dynamodb": ("BatchGetItem", "PutItem", "Query", "UpdateItem"),
    "securityhub": ("BatchImportFindings", "BatchUpdateFindings"),
}

# Services whose entries the trimmed endpoints.json keeps (the partitions and regions are kept whole), by client
# name: every service the runtime makes a client for (tests/infra/test_service_models.py reads them from the code
# and fails on one missing here) and those the stack's next functions call. Most services resolve their endpoint
# from their own rule set, which is not trimmed; but the client still takes its region from this file, and a
# global service missing here (IAM, Organizations) would be sent to a regional host that does not exist.
ENDPOINT_SERVICES: tuple[str, ...] = (
    *OPERATIONS,
    "cloudtrail",
    "cloudwatch",
    "events",
    "iam",
    "lambda",
    "organizations",
    "secretsmanager",
    "securityhub",
    "sqs",
    "sts",
)
