"""A readable timeline: each CloudTrail event, the rule it matched, what amiguard decided and did, the alert."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from amiguard.sandbox.account import Alert, Delivery, Sandbox

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "green"}


def _event_label(event: dict[str, Any]) -> str:
    detail = event.get("detail") or {}
    if event.get("detail-type") == "AWS API Call via CloudTrail":
        identity = detail.get("userIdentity") or {}
        who = identity.get("userName") or str(identity.get("arn", "?")).rsplit("/", 1)[-1]
        params = detail.get("requestParameters") or {}
        response = detail.get("responseElements") or {}
        resources = [
            str(item.get("resourceId"))
            for item in ((params.get("resourcesSet") or {}).get("items") or [])
            if isinstance(item, dict)
        ]
        target = (
            params.get("imageId")
            or params.get("snapshotId")
            or response.get("imageId")
            or " ".join(resources[:3] + (["…"] if len(resources) > 3 else []))
        )
        return f"{detail.get('eventName')} {target} by {who} in {detail.get('awsRegion')}"
    return f"{event.get('detail-type')}: {detail.get('ImageId', '')} {detail.get('State', '')}"


class Timeline:
    """Prints what happens in the sandbox as it happens."""

    def __init__(self, sandbox: Sandbox, console: Console | None = None) -> None:
        self.sandbox = sandbox
        self.console = console or Console()

    def act(self, title: str) -> None:
        self.console.rule(f"[bold]{title}")

    def step(self, actor: str, text: str) -> None:
        self.console.print(f"[bold]{actor}[/]  {text}")

    def delivery(self, delivery: Delivery) -> None:
        result = delivery.result or {}
        line = Text("  ")
        line.append("event ", style="dim")
        line.append(_event_label(delivery.event))
        line.append(f"  → rule {delivery.rule} → {delivery.function}: ", style="dim")
        if delivery.error:
            line.append(f"FAILED ({delivery.error}), sent to the dead-letter queue", style="bold red")
        elif result.get("status") == "dropped":
            line.append(f"ignored ({result.get('reason')}: {result.get('detail')})", style="dim")
        elif result.get("status") == "clean":
            line.append(f"nothing to do ({result.get('reason')})", style="green")
        else:
            line.append(f"{result.get('reason')}", style="bold")
            for finding in result.get("findings", []):
                line.append(f"\n      {finding['severity'].upper()} {finding['type']}: {finding['summary']}")
        self.console.print(line)

    def alert(self, alert: Alert) -> None:
        message = alert.message
        severity = str(message.get("severity", "info"))
        body = Text()
        body.append(f"{message.get('summary')}\n")
        fields = [
            ("image", f"{message.get('image_id') or ''} {message.get('image_name') or ''}".strip()),
            ("snapshot", message.get("snapshot_id")),
            ("account / region", f"{message.get('account')} / {message.get('region')}"),
            ("actor", message.get("actor")),
            ("action", message.get("action")),
            (
                "exposure",
                f"{message['exposure_seconds']:.1f} s" if message.get("exposure_seconds") is not None else None,
            ),
            ("evidence", ", ".join(f"{k}={v}" for k, v in (message.get("evidence") or {}).items())),
        ]
        for label, value in fields:
            if value:
                body.append(f"{label}: ", style="dim")
                body.append(f"{value}\n")
        self.console.print(Panel(body, title=alert.subject, border_style=SEVERITY_STYLE.get(severity, "white")))

    def settle(self) -> list[Delivery]:
        """Let EventBridge deliver everything pending, then show the alerts that went out."""
        deliveries = self.sandbox.run(on_delivery=self.delivery)
        for alert in self.sandbox.alerts():
            self.alert(alert)
        return deliveries
