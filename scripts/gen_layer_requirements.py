"""Generate layers/amiguard/requirements.txt from pyproject.toml's [project].dependencies.

The Lambda layer ships exactly the runtime dependencies the project declares, so pyproject.toml stays the
one place they are named. Every one must be an exact pin (``name==version``): the layer is built on another
machine and architecture than the tests run on, and only a pin makes both install the same release.

    python scripts/gen_layer_requirements.py            # print what the file should hold
    python scripts/gen_layer_requirements.py --write    # rewrite the file (make requirements)
    python scripts/gen_layer_requirements.py --check    # exit 1 when the file has drifted
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
REQUIREMENTS = ROOT / "layers" / "amiguard" / "requirements.txt"

HEADER = (
    "# Generated from pyproject.toml [project].dependencies by scripts/gen_layer_requirements.py.\n"
    "# Do not edit: change pyproject.toml, then run `make requirements`.\n"
)

# name, optional [extras], ==version, optional ; marker
EXACT_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[A-Za-z0-9._,\s-]+\])?\s*==\s*(?P<version>[^\s;,*]+)"
    r"\s*(?P<marker>;.+)?$"
)


class NotPinnedError(ValueError):
    """A runtime dependency that is not an exact ``==`` pin."""


def render_requirements(pyproject: Path = PYPROJECT) -> str:
    """Return the requirements.txt text for the layer, from ``pyproject``'s runtime dependencies."""
    with pyproject.open("rb") as f:
        dependencies: list[str] = tomllib.load(f)["project"]["dependencies"]
    lines: list[tuple[str, str]] = []
    for dependency in dependencies:
        match = EXACT_PIN.match(dependency.strip())
        if match is None:
            raise NotPinnedError(
                f"{pyproject.name}: runtime dependency {dependency!r} is not an exact pin (name==version)"
            )
        extras = re.sub(r"\s+", "", match["extras"] or "")
        marker = f" ; {match['marker'][1:].strip()}" if match["marker"] else ""
        lines.append((match["name"].lower(), f"{match['name']}{extras}=={match['version']}{marker}"))
    return HEADER + "".join(f"{line}\n" for _, line in sorted(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"rewrite {REQUIREMENTS.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true", help="exit 1 when the file differs from pyproject.toml")
    args = parser.parse_args(argv)

    try:
        expected = render_requirements()
    except NotPinnedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.write:
        REQUIREMENTS.write_text(expected)
    elif args.check:
        actual = REQUIREMENTS.read_text() if REQUIREMENTS.exists() else ""
        if actual != expected:
            print(f"{REQUIREMENTS.relative_to(ROOT)} is out of date: run `make requirements`", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
