"""The CLI's tables (findings, scan, backtest) on an 80-column terminal: ids whole, everything else gives way.

Rich shrinks only the columns that may wrap when a table is wider than the terminal; so ids (AMI, snapshot,
account) sit in ``no_wrap`` columns no wider than the longest id, where a longer text (an AMI's name, chosen by
whoever made it) ends in an ellipsis, and the free text (types, summaries, principals) folds. Related values
share a cell, one per line, so that few columns are needed.
"""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

ID_WIDTH = len("snap-0123456789abcdef0")  # the longest EC2 id a table shows
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "green"}


def narrow_table(title: str, *, separated: bool = True) -> Table:
    """No vertical rules, no outer padding (more room for text at 80 columns); ``separated``: a blank line
    between rows (of several lines each)."""
    return Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, show_lines=separated
    )


def add_id_column(table: Table, header: str) -> None:
    """A column of ids, one per line: never split; any longer line is cut with an ellipsis."""
    table.add_column(header, no_wrap=True, overflow="ellipsis", max_width=ID_WIDTH)


def add_text_column(table: Table, header: str, *, ratio: int | None = None) -> None:
    """A column of free text that folds (wraps, and splits words longer than the column)."""
    table.add_column(header, overflow="fold", ratio=ratio)


def stacked(*lines: str | Text | None, style: str = "") -> Text:
    """Values one per line in one cell (empty ones left out)."""
    text = Text(style=style)
    for line in (line for line in lines if line):
        if text:
            text.append("\n")
        text.append(line)
    return text


def severity_text(severity: str) -> Text:
    return Text(severity, style=SEVERITY_STYLE.get(severity, ""))
