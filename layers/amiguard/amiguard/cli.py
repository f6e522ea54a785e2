"""The ``amiguard`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from amiguard import scan


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amiguard", description="Governance for Amazon Machine Images.")
    commands = parser.add_subparsers(dest="command", required=True)
    scan.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
