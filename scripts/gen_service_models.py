"""Generate the trimmed botocore service models in layers/amiguard/amiguard/aws/service_models/.

For each service in ``OPERATIONS``: botocore's own model of the version a client would load, keeping the
listed operations and every shape they reach (input, output, errors), metadata unchanged, documentation
removed. And ``endpoints.json``: botocore's endpoint data with every partition and region, and the
entries of ``ENDPOINT_SERVICES`` (by their endpoint prefix) only. Run it after changing the pinned
boto3/botocore, the operations the adapters call or the services the runtime makes clients for.

    python scripts/gen_service_models.py            # list what would be written
    python scripts/gen_service_models.py --write    # rewrite the models (make service-models)
    python scripts/gen_service_models.py --check    # exit 1 when a committed model has drifted
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import botocore.session

from amiguard.aws.service_models import ENDPOINT_SERVICES, OPERATIONS

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "layers" / "amiguard" / "amiguard" / "aws" / "service_models"
DOCUMENTATION = frozenset({"documentation", "documentationUrl"})
ENDPOINTS = "endpoints.json"


def _without_documentation(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_documentation(item) for key, item in value.items() if key not in DOCUMENTATION}
    if isinstance(value, list):
        return [_without_documentation(item) for item in value]
    return value


def _reachable(shapes: dict[str, Any], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        pending.extend(shape[key]["shape"] for key in ("member", "key", "value") if key in shape)
        pending.extend(member["shape"] for member in shape.get("members", {}).values())
    return seen


def trimmed_models() -> dict[Path, str]:
    """Relative path (``ec2/2016-11-15/service-2.json``, ``endpoints.json``) → the file's text."""
    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    files: dict[Path, str] = {}
    for service, operations in OPERATIONS.items():
        version = loader.determine_latest_version(service, "service-2")
        model = loader.load_service_model(service, "service-2", version)
        kept = {name: model["operations"][name] for name in operations}
        roots = [
            ref["shape"]
            for operation in kept.values()
            for ref in [operation.get("input"), operation.get("output"), *operation.get("errors", [])]
            if ref
        ]
        shapes = model["shapes"]
        trimmed = {
            **{key: value for key, value in model.items() if key not in ("operations", "shapes", *DOCUMENTATION)},
            "operations": kept,
            "shapes": {name: shapes[name] for name in shapes if name in _reachable(shapes, roots)},
        }
        files[Path(service) / version / "service-2.json"] = _json(_without_documentation(trimmed))
    # endpoints.json names services by endpoint prefix (CloudWatch's is "monitoring").
    keep = {session.get_service_model(name).endpoint_prefix for name in ENDPOINT_SERVICES}
    endpoints = loader.load_data("endpoints")
    partitions = [
        {**partition, "services": {name: entry for name, entry in partition["services"].items() if name in keep}}
        for partition in endpoints["partitions"]
    ]
    files[Path(ENDPOINTS)] = _json({**endpoints, "partitions": partitions})
    return files


def _json(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def committed_models(folder: Path = MODELS) -> dict[Path, str]:
    paths = sorted([*folder.glob("*/*/service-2.json"), *folder.glob(ENDPOINTS)])
    return {path.relative_to(folder): path.read_text(encoding="utf-8") for path in paths}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"rewrite {MODELS.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true", help="exit 1 when the committed models differ")
    args = parser.parse_args(argv)

    expected = trimmed_models()
    if args.write:
        for stale in set(committed_models()) - set(expected):
            (MODELS / stale).unlink()
        for relative, text in expected.items():
            (MODELS / relative).parent.mkdir(parents=True, exist_ok=True)
            (MODELS / relative).write_text(text, encoding="utf-8")
    elif args.check:
        if committed_models() != expected:
            print(f"{MODELS.relative_to(ROOT)} is out of date: run `make service-models`", file=sys.stderr)
            return 1
    else:
        for relative, text in expected.items():
            print(f"{relative}: {len(text):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
