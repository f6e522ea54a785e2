"""The ``amiguard`` command line: ``demo`` and ``replay`` on the embedded sandbox, ``scan``, ``backtest`` and
``findings`` against an account.

Everything here needs the ``cli`` extra (moto, PyYAML, rich, rich-argparse); without it, one line says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from amiguard_cli.console import (
    EXPECTED_ERRORS,
    HelpFormatter,
    extra_hint,
    fail,
    missing_extra,
    one_line,
)


def _demo(args: argparse.Namespace) -> int:
    from amiguard_cli.demo.scenario import run_demo

    failed = run_demo(full=args.full)
    return 0 if failed == 0 else 2


def _replay(args: argparse.Namespace) -> int:
    from rich.console import Console

    from amiguard_cli.demo.timeline import Timeline
    from amiguard_cli.sandbox.replay import replay

    console = Console()
    printer = Timeline(None, console)  # printing only: the sandbox lives inside replay()
    mode = "enforce" if args.enforce else "audit"
    console.rule(f"[bold]replay {args.event} ({mode} mode)")
    result = replay(Path(args.event), enforce=args.enforce, on_delivery=printer.delivery)
    console.print(f"seeded: {', '.join(result.seeded) or 'nothing (no real AMI or snapshot id in the event)'}")
    if not result.deliveries:
        console.print("no rule in template.yaml matched this event: amiguard would never see it")
    for alert in result.alerts:
        printer.alert(alert)
    return 2 if any(delivery.error for delivery in result.deliveries) else 0


def build_parser() -> argparse.ArgumentParser:
    from amiguard_cli.findings import add_parser as add_findings

    parser = argparse.ArgumentParser(
        prog="amiguard", description="Governance for Amazon Machine Images.", formatter_class=HelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="play the scenario on the embedded sandbox (moto)", formatter_class=HelpFormatter
    )
    demo.add_argument(
        "--full",
        "--verbose",
        action="store_true",
        help="print every step, delivery and alert as it happens (default: one line per event and a summary)",
    )
    demo.set_defaults(run=_demo)

    replay = commands.add_parser(
        "replay", help="run an event or trail file through the rules and handlers", formatter_class=HelpFormatter
    )
    replay.add_argument(
        "event", help="an EventBridge event, a CloudTrail record, or a CloudTrail log file (.json or .json.gz)"
    )
    replay.add_argument("--enforce", action="store_true", help="remediate (default: audit, change nothing)")
    replay.set_defaults(run=_replay)
    add_findings(commands)

    from amiguard_cli import scan
    from amiguard_cli.backtest import command as backtest

    scan.add_parser(commands)
    backtest.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; expected failures are one line on standard error and exit 2 (see console.py)."""
    try:
        args = build_parser().parse_args(argv)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except ModuleNotFoundError as error:
        if missing_extra(error):
            return fail(extra_hint(error))
        raise
    except EXPECTED_ERRORS as error:
        return fail(one_line(error))


if __name__ == "__main__":
    sys.exit(main())
