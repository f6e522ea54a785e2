"""Write env.json: every function's environment as the template gives it, for ``sam local invoke --env-vars``.

``sam local invoke -e events/public_guard/make-ami-public.json PublicGuardFunction --env-vars env.json`` (needs
Docker). Values: the parameters' defaults (Mode=audit, so a local run changes nothing) and example names for the
stack's own resources (topic, table); edit them to point at real ones. ``make env-json`` rewrites the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "amiguard"), str(ROOT / "cli")]

from amiguard_cli.sandbox.cfn import (  # noqa: E402
    Stack,
    deployed_environment,
    function_name,
    load_template,
    parameter_values,
    resources_of_type,
)

ACCOUNT, REGION, STACK = "123456789012", "us-east-1", "amiguard-dev"
EXAMPLE_RESOURCES = {
    "AlertTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{STACK}-AlertTopic",
    "LedgerTable": f"{STACK}-LedgerTable",
}


def environments(template_path: Path) -> dict[str, dict[str, str]]:
    """Function logical id -> its environment, resolved with the defaults, Mode=audit and example resources."""
    template = load_template(template_path)
    stack = Stack(parameter_values(template, {"Mode": "audit"}), EXAMPLE_RESOURCES, ACCOUNT, REGION)
    return {
        logical_id: dict(
            sorted(deployed_environment(template, function_name(resource["Properties"]["CodeUri"]), stack).items())
        )
        for logical_id, resource in sorted(resources_of_type(template, "AWS::Serverless::Function").items())
    }


def main() -> int:
    (ROOT / "env.json").write_text(json.dumps(environments(ROOT / "template.yaml"), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
