"""Trimmed botocore service models: the operations amiguard's functions call, and nothing else.

To make a client, botocore loads the service's whole model: EC2's (700 operations, 550 KB compressed)
costs ~130 ms of CPU on every cold start, more than everything amiguard itself imports. The template
sets ``AWS_DATA_PATH`` to this folder, so botocore finds these models first; any other service (Secrets
Manager, for the notifier's webhook) falls through to botocore's own data.

The JSON files are generated from the pinned botocore by ``scripts/gen_service_models.py`` (``make
service-models``) with operations, shapes and metadata unchanged, documentation removed. Tests fail when
they drift from botocore or when an adapter calls an operation missing here. Outside Lambda (tests, the
CLI, the sandbox) ``AWS_DATA_PATH`` is unset and botocore's full models are used.
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
    "dynamodb": ("PutItem", "Query", "TransactWriteItems", "UpdateItem"),
}
