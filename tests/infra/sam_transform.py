"""Print a SAM template transformed to plain CloudFormation, as JSON (what CloudFormation would deploy).

Run by the SAM venv's interpreter (samtranslator lives there, not in the project's venv):

    .venv-sam/bin/python tests/infra/sam_transform.py template.yaml

Local CodeUri/ContentUri paths are swapped for S3 URIs first, as ``sam validate`` does, since the translator
only accepts those. Offline: no managed policy is looked up (amiguard attaches none).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

LOCAL_PATH_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


class NoManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader, which would call IAM."""

    def load(self) -> dict[str, str]:
        return {}


def with_s3_uris(template: dict[str, Any]) -> dict[str, Any]:
    for logical_id, resource in template.get("Resources", {}).items():
        key = LOCAL_PATH_PROPERTIES.get(resource.get("Type", ""))
        properties = resource.get("Properties", {})
        if key and isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
            properties[key] = f"s3://amiguard-local-build/{logical_id}"
    return template


def main(path: str) -> None:
    template = with_s3_uris(yaml_parse(Path(path).read_text(encoding="utf-8")))
    transformed = transform(template, {}, NoManagedPolicies())  # type: ignore[arg-type]
    json.dump(transformed, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main(sys.argv[1])
