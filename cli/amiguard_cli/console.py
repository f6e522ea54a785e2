"""What every subcommand shows a person: help rendered for a terminal, and expected failures in one line.

``amiguard: error: <what>`` on standard error and exit 2 for what a user can cause and fix (a missing or
unreadable file, a bad ``--output`` path, an unknown profile, no region or credentials, a setting that does not
validate, the ``cli`` extra not installed); a traceback only for a bug.
"""

from __future__ import annotations

import argparse
import sys

from botocore.exceptions import BotoCoreError

from amiguard.models.settings import SettingsError

HelpFormatter: type[argparse.HelpFormatter]
try:  # rich-argparse comes with the cli extra; without it, plain argparse help
    from rich_argparse import RawDescriptionRichHelpFormatter

    HelpFormatter = RawDescriptionRichHelpFormatter
except ModuleNotFoundError:  # pragma: no cover - the cli extra is installed wherever the tests run
    HelpFormatter = argparse.RawDescriptionHelpFormatter

EXIT_ERROR = 2
CLI_EXTRA_MODULES = frozenset({"moto", "rich", "rich_argparse", "yaml"})
# Failures a user causes and can fix; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, BotoCoreError, SettingsError)


def description(doc: str | None) -> str:
    """A module docstring as help text: reStructuredText's ``literals`` shown as `literals`."""
    return (doc or "").replace("``", "`").strip()


def one_line(error: BaseException) -> str:
    """The error as one line, naming the file when the OS gave one."""
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    text = " ".join(str(error).split())
    return text or type(error).__name__


def fail(message: str) -> int:
    print(f"amiguard: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def missing_extra(error: ModuleNotFoundError) -> bool:
    return bool(error.name) and str(error.name).split(".")[0] in CLI_EXTRA_MODULES


def extra_hint(error: ModuleNotFoundError) -> str:
    return f"this command needs the cli extra ({error.name} is not installed): pip install 'amiguard[cli]'"
