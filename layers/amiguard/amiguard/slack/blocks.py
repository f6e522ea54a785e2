"""A finding as a Slack Block Kit message: understood in one glance, within every Slack limit.

Pure: finding in, ``{"text": ..., "blocks": [...]}`` out. Whatever a finding holds (a 10 KB evidence list,
unicode names, ``<`` and ``&`` in an AMI name) the message stays inside Slack's documented limits, so
Slack never answers ``invalid_blocks``: a header of at most 150 characters, section texts of at most
3,000, at most 10 fields of at most 2,000 each, at most 50 blocks. Evidence that does not fit is cut with
a count of what was left out; the SNS message and the ledger keep it whole.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from amiguard.models.catalogue import entry_for
from amiguard.models.findings import Action, Finding, Severity
from amiguard.models.settings import IMAGE_ID, REGION
from amiguard.policy.screening import SNAPSHOT_ID

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
FALLBACK_LIMIT = 3000  # the notification text; Slack truncates long ones anyway
EVIDENCE_ITEM_LIMIT = 200
URL_LIMIT = 3000  # Slack's limit for a button's url
GENERIC_CONSOLE_URL = "https://console.aws.amazon.com/ec2/home"

MARKERS = {
    Severity.CRITICAL: "\U0001f534",  # red circle
    Severity.HIGH: "\U0001f7e0",  # orange circle
    Severity.MEDIUM: "\U0001f7e1",  # yellow circle
    Severity.LOW: "\U0001f535",  # blue circle
    Severity.INFO: "\u26aa",  # white circle
}

ACTION_TEXT = {
    Action.REVOKED: "revoked",
    Action.WOULD_REVOKE: "would revoke (audit mode: nothing changed)",
    Action.TAGGED: "tagged",
    Action.WOULD_TAG: "would tag (audit mode: nothing changed)",
    Action.COPIED: "copied",
    Action.WOULD_COPY: "would copy (audit mode: nothing changed)",
    Action.DEPRECATED: "deprecated",
    Action.DISABLED: "disabled",
    Action.DEREGISTERED: "deregistered",
    Action.NONE: "none",
}


def escape(text: str) -> str:
    """Slack's three control characters; also what stops ``<!channel>`` in an AMI name from pinging anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def console_host(region: str) -> str:
    if region.startswith("us-gov-"):
        return "https://console.amazonaws-us-gov.com"
    if region.startswith("cn-"):
        return "https://console.amazonaws.cn"
    return f"https://{region}.console.aws.amazon.com"


def _linkable_image(finding: Finding) -> str | None:
    return finding.image_id if finding.image_id and IMAGE_ID.match(finding.image_id) else None


def _linkable_snapshot(finding: Finding) -> str | None:
    return finding.snapshot_id if finding.snapshot_id and SNAPSHOT_ID.match(finding.snapshot_id) else None


def console_url(finding: Finding) -> str:
    """The EC2 console page of what the finding is about (the AMI, else the snapshot, else the settings).

    Built only from values that have AWS's own shape (a region name, an AMI or snapshot id), so whatever
    an alert carries, the link goes to the AWS console, stays short, and cannot break out of ``<url|text>``.
    """
    if not REGION.match(finding.region):
        return GENERIC_CONSOLE_URL
    base = f"{console_host(finding.region)}/ec2/home?region={finding.region}"
    if image_id := _linkable_image(finding):
        url = f"{base}#ImageDetails:imageId={image_id}"
    elif snapshot_id := _linkable_snapshot(finding):
        url = f"{base}#SnapshotDetails:snapshotId={snapshot_id}"
    else:
        url = f"{base}#Settings:tab=dataProtectionAndSecurity"
    return url if len(url) <= URL_LIMIT else GENERIC_CONSOLE_URL


def format_duration(seconds: float) -> str:
    """``4 s``, ``3 min 12 s``, ``2 h 5 min``, ``3 d 4 h`` (``unknown`` for what is not a finite duration)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown"
    total = round(seconds)
    if total < 60:
        return f"{max(seconds, 0):.1f} s" if seconds < 10 else f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "unknown"


def _item_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return clip(text.replace("`", "'").replace("\n", " "), EVIDENCE_ITEM_LIMIT)


def evidence_text(evidence: dict[str, Any], limit: int = SECTION_LIMIT) -> tuple[str, int]:
    """Evidence as mrkdwn bullets within ``limit`` characters; returns the text and how many items were left out."""
    lines = ["*Evidence*"]
    used = len(lines[0])
    omitted = 0
    reserve = 80  # room for the closing "… and N more" line
    for key, value in evidence.items():
        items = value if isinstance(value, list | tuple) else [value]
        label = f"\u2022 *{escape(clip(str(key), 100))}*"
        if isinstance(value, list | tuple):
            label += f" ({len(items)})"
        line = label + (": none" if not items else ":")
        if used + len(line) + 1 > limit - reserve:
            omitted += max(len(items), 1)
            continue
        shown = 0
        for item in items:
            piece = f" `{escape(_item_text(item))}`" + ("," if shown < len(items) - 1 else "")
            if used + len(line) + len(piece) + 1 > limit - reserve:
                break
            line += piece
            shown += 1
        if shown < len(items):
            line += f" \u2026 and {len(items) - shown} more"
            omitted += len(items) - shown
        lines.append(line)
        used += len(line) + 1
    if omitted:
        lines.append(f"_{omitted} evidence item(s) not shown: the SNS message and the ledger hold them all._")
    return clip("\n".join(lines), limit), omitted


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": clip(f"*{label}*\n{value}", FIELD_LIMIT)}


def fallback_text(finding: Finding) -> str:
    """The notification text (and what screen readers and old clients show): mrkdwn too, so escaped."""
    marker = MARKERS[finding.severity]
    summary = escape(finding.summary)
    return clip(f"{marker} {finding.severity.value.upper()} {finding.type.value}: {summary}", FALLBACK_LIMIT)


def finding_blocks(finding: Finding) -> dict[str, Any]:
    """The whole webhook payload for one finding."""
    marker = MARKERS[finding.severity]
    link = console_url(finding)
    entry = entry_for(finding.type)
    header = f"{marker} {finding.severity.value.capitalize()} \u00b7 {finding.type.value.replace('-', ' ')}"

    # Every value below may come from an alert anyone able to publish wrote: escaped, clipped, linked only
    # when it has AWS's own shape.
    fields = []
    if finding.image_id:
        name = f" \u00b7 {escape(clip(finding.image_name, 300))}" if finding.image_name else ""
        image = _linkable_image(finding)
        shown = f"<{link}|{image}>" if image else escape(clip(finding.image_id, 100))
        fields.append(_field("AMI", shown + name))
    if finding.snapshot_id:
        snapshot = _linkable_snapshot(finding)
        linked = snapshot and not _linkable_image(finding)
        fields.append(_field("Snapshot", f"<{link}|{snapshot}>" if linked else escape(clip(finding.snapshot_id, 100))))
    account = finding.account or "unknown"
    if finding.account_name:  # organization mode: the account's name in the organization, then its id
        account = f"{clip(finding.account_name, 50)} ({account})"
    fields.append(_field("Account", escape(clip(account, 100))))
    fields.append(_field("Region", escape(clip(finding.region, 100))))
    fields.append(_field("Actor", escape(clip(finding.actor or "unknown", 500))))
    fields.append(_field("Action taken", ACTION_TEXT.get(finding.action, finding.action.value)))
    if finding.exposure_seconds is not None:
        fields.append(_field("Exposed for", format_duration(finding.exposure_seconds)))
    fields.append(_field("When", _time(finding.event_time or finding.detected_at)))

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(header, HEADER_LIMIT), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(escape(finding.summary), SECTION_LIMIT)}},
        {"type": "section", "fields": fields[:MAX_FIELDS]},
        # What it is and what is done about it, from the finding catalogue (the e-mail's and docs/findings.md's
        # words too).
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(f"*{entry.title}*\n{escape(entry.remedy)}", SECTION_LIMIT)},
        },
    ]
    if finding.evidence:
        text, _ = evidence_text(finding.evidence)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in the EC2 console"},
                    "url": link,
                    "action_id": "open-console",
                }
            ],
        }
    )
    context = (
        f"amiguard \u00b7 `{finding.type.value}` \u00b7 severity {finding.severity.value}"
        f" \u00b7 event {escape(clip(finding.event_id or 'none', 100))} \u00b7 fingerprint {finding.fingerprint[:12]}"
    )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(context, SECTION_LIMIT)}]})
    return {"text": fallback_text(finding), "blocks": blocks[:MAX_BLOCKS]}
