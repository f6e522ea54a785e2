"""Write env.json: every function's environment as the template gives it, for ``sam local invoke --env-vars``.

``sam local invoke -e events/public_guard/make-ami-public.json PublicGuardFunction --env-vars env.json`` (needs
Docker). Values: the parameters' defaults (Mode=audit, so a local run changes nothing) and the stack's own resources
as the embedded sandbox names them; edit them to point at real ones. ``make env-json`` rewrites the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "amiguard"), str(ROOT / "cli")]

from amiguard_cli.sandbox.cfn import deployed_environment, function_name, resources_of_type  # noqa: E402


def environments() -> dict[str, dict[str, str]]:
    """Function logical id -> its environment as the sandbox deploys the stack (Mode=audit, the defaults): every
    ``!Ref`` and ``!GetAtt`` (topic, table, roles, rules, functions, secret) resolved to an example of its shape."""
    from amiguard_cli.sandbox.account import Sandbox

    with Sandbox(ROOT, parameters={"Mode": "audit"}) as sandbox:
        stack = sandbox.stack()
        return {
            logical_id: dict(
                sorted(
                    deployed_environment(
                        sandbox.template, function_name(resource["Properties"]["CodeUri"]), stack
                    ).items()
                )
            )
            for logical_id, resource in sorted(resources_of_type(sandbox.template, "AWS::Serverless::Function").items())
        }


def main() -> int:
    (ROOT / "env.json").write_text(json.dumps(environments(), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
