"""One self-contained HTML page for a report (``scan`` and ``backtest`` with ``--format html``).

No external assets, no script: inline CSS only, so the file can be mailed, attached to a ticket or opened
offline. Counts by severity on top, then the rows grouped by severity (worst first) and, within each, by
account. Every value is HTML-escaped: AMI names, tags and actors are written by the people amiguard watches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape

SEVERITIES = ("critical", "high", "medium", "low", "info")
COLOURS = {"critical": "#b00020", "high": "#d35400", "medium": "#b7950b", "low": "#2e86c1", "info": "#566573"}

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2rem;color:#1c2833;background:#fff}
h1{font-size:1.5rem;margin:0 0 .25rem}p.meta{color:#566573;margin:0 0 1.5rem}
.counts{display:flex;gap:1rem;margin-bottom:2rem;flex-wrap:wrap}
.count{border-radius:6px;padding:.75rem 1.25rem;color:#fff;min-width:7rem}
.count b{display:block;font-size:1.75rem}
h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:3px solid;padding-bottom:.25rem}
h3{font-size:1rem;margin:1rem 0 .25rem;color:#34495e}
table{border-collapse:collapse;width:100%;font-size:.875rem;margin-bottom:1rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e5e8e8;vertical-align:top}
th{background:#f4f6f6}td.id{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:nowrap}
td.nw{white-space:nowrap}
.errors{background:#fdedec;border-left:4px solid #b00020;padding:.5rem 1rem}
"""


def render_html(
    title: str,
    rows: Sequence[Mapping[str, object]],
    columns: Sequence[str],
    *,
    summary: str,
    errors: Sequence[str] = (),
    id_columns: frozenset[str] = frozenset({"image", "snapshot", "resource", "account"}),
    unbroken_columns: frozenset[str] = frozenset({"type", "finding", "region", "action", "time"}),
    generated_at: datetime | None = None,
) -> str:
    """The page: ``rows`` (each with a ``severity`` and an ``account``) shown with ``columns``."""
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    counts = Counter(str(row.get("severity", "info")) for row in rows)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(summary)} &middot; generated {escape(when)}</p>',
        '<div class="counts">',
    ]
    for severity in SEVERITIES:
        parts.append(
            f'<div class="count" style="background:{COLOURS[severity]}">'
            f"<b>{counts.get(severity, 0)}</b>{severity}</div>"
        )
    parts.append("</div>")
    if errors:
        parts.append('<div class="errors"><b>Could not check</b><ul>')
        parts += [f"<li>{escape(error)}</li>" for error in errors]
        parts.append("</ul></div>")
    if not rows:
        parts.append("<p>Nothing to report.</p>")
    for severity in SEVERITIES:
        of_severity = [row for row in rows if row.get("severity") == severity]
        if not of_severity:
            continue
        parts.append(f'<h2 style="border-color:{COLOURS[severity]}">{severity} ({len(of_severity)})</h2>')
        for account in sorted({str(row.get("account", "")) for row in of_severity}):
            in_account = [row for row in of_severity if str(row.get("account", "")) == account]
            parts.append(f"<h3>account {escape(account)}</h3><table><thead><tr>")
            parts += [f"<th>{escape(column)}</th>" for column in columns]
            parts.append("</tr></thead><tbody>")
            for row in in_account:
                cells = [
                    f"<td{_cell_class(column, id_columns, unbroken_columns)}>{escape(str(row.get(column) or ''))}</td>"
                    for column in columns
                ]
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _cell_class(column: str, ids: frozenset[str], unbroken: frozenset[str]) -> str:
    """Ids in a fixed-width font and never split; short words never split either."""
    if column in ids:
        return ' class="id"'
    return ' class="nw"' if column in unbroken else ""
