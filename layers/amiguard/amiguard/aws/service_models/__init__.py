"""Trimmed botocore service models: the operations amiguard's functions call, and nothing else.

To make a client, botocore loads the service's whole model: EC2's (700 operations, 550 KB compressed)
costs ~90 ms of CPU on every cold start, more than everything amiguard itself imports; and the endpoint
data of every AWS service (``endpoints.json``, 1.2 MB) another ~20 ms. The template sets ``AWS_DATA_PATH``
to this folder, so botocore finds these files first; the model of any other service (Secrets Manager, for
the notifier's webhook) falls through to botocore's own data.

The JSON files are generated from the pinned botocore by ``scripts/gen_service_models.py`` (``make
service-models``) with operations, shapes and metadata unchanged, documentation removed, and the
endpoint data of ``ENDPOINT_SERVICES`` only. Tests fail when they drift from botocore, when an adapter
calls an operation missing here, or when an endpoint resolves differently from botocore's full data.
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
        "GetImageBlockPublicAccessState",
        "ModifyImageAttribute",
        "ModifySnapshotAttribute",
    ),
    "sns": ("Publish",),
    "dynamodb": ("BatchGetItem", "PutItem", "Query", "UpdateItem"),
}

# Services whose entries the trimmed endpoints.json keeps (the partitions and regions are kept whole): the
# ones above, and those amiguard calls on botocore's full models (Secrets Manager for the notifier's webhook,
# STS for the CLI's account lookup).
ENDPOINT_SERVICES: tuple[str, ...] = (*OPERATIONS, "secretsmanager", "sts")
