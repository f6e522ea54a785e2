"""How an alert looks where it lands: the Slack message as Slack renders it (text), and the SNS message.

For the demo's timeline: ``render_slack_text(finding_blocks(finding))`` and ``render_sns_message(alert)``.
Pure text, no rich markup, so it can be printed anywhere (a rich ``Panel`` around it is the caller's choice).
"""

from __future__ import annotations

import json
import re
from typing import Any

from amiguard.models.findings import Finding
from amiguard.slack.blocks import finding_blocks
from amiguard_cli.sandbox.account import Alert

_LINK = re.compile(r"<([^|<>]+)\|([^<>]+)>")
_BARE_LINK = re.compile(r"<(https?://[^|<>]+)>")


def mrkdwn_to_text(text: str) -> str:
    """Slack mrkdwn as it reads on screen: links as ``label (url)``, no bold/italic/code markers, entities decoded."""
    text = _LINK.sub(lambda m: f"{m[2]} ({m[1]})", text)
    text = _BARE_LINK.sub(lambda m: m[1], text)
    text = re.sub(r"(?<!\w)\*([^*\n]+)\*(?!\w)", r"\1", text)
    text = re.sub(r"(?<!\w)_([^_\n]+)_(?!\w)", r"\1", text)
    text = text.replace("`", "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_slack_text(payload: dict[str, Any], width: int = 100) -> str:
    """A webhook payload (``{"text", "blocks"}``) as the lines Slack shows, block by block."""
    lines: list[str] = []
    for block in payload.get("blocks", []):
        kind = block.get("type")
        if kind == "header":
            title = block["text"]["text"]
            lines += [title, "\u2500" * min(len(title) + 2, width)]
        elif kind == "section":
            if "text" in block:
                lines += mrkdwn_to_text(block["text"]["text"]).splitlines()
            fields = [mrkdwn_to_text(field["text"]).split("\n", 1) for field in block.get("fields", [])]
            for label_value in fields:
                label, value = [*label_value, ""][:2]
                lines.append(f"  {label + ':':<14} {value}")
        elif kind == "actions":
            for element in block.get("elements", []):
                if element.get("type") == "button":
                    lines.append(f"[ {element['text']['text']} ] \u2192 {element.get('url', '')}")
        elif kind == "context":
            lines.append(
                " \u00b7 ".join(mrkdwn_to_text(element.get("text", "")) for element in block.get("elements", []))
            )
        elif kind == "divider":
            lines.append("\u2500" * width)
    if not lines:
        lines.append(mrkdwn_to_text(payload.get("text", "")))
    return "\n".join(lines)


def render_finding_as_slack(finding: Finding | dict[str, Any]) -> str:
    """Shortcut for the demo: a finding (or the JSON an SNS alert carries) as Slack shows it."""
    model = finding if isinstance(finding, Finding) else Finding.model_validate(finding)
    return render_slack_text(finding_blocks(model))


def render_sns_message(alert: Alert, *, indent: int | None = 2) -> str:
    """The SNS notification as a subscriber gets it: subject, filterable attributes, then the JSON message
    (indented for reading; ``indent=None``: on one line, as SNS delivers it)."""
    attributes = ", ".join(f"{name}={value}" for name, value in sorted(alert.attributes.items()))
    return "\n".join(
        [
            f"Subject: {alert.subject}",
            f"MessageAttributes: {attributes}",
            "Message:",
            json.dumps(alert.message, ensure_ascii=False, indent=indent),
        ]
    )
