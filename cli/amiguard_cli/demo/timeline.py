"""A readable timeline: each CloudTrail event, the rule it matched, what amiguard decided and did, the alert."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from amiguard_cli.demo.render import render_finding_as_slack, render_sns_message
from amiguard_cli.sandbox.account import Alert, Delivery, Sandbox

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "green"}


def _event_label(event: dict[str, Any]) -> str:
    if "Records" in event:  # an SNS notification, as Lambda receives it
        records = event.get("Records") or [{}]
        return f"SNS notification {records[0].get('Sns', {}).get('Subject', '')!r}"
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
            or params.get("functionName")
            or params.get("name")
            or params.get("roleName")
        )
        return f"{detail.get('eventName')} {target} by {who} in {detail.get('awsRegion')}"
    return f"{event.get('detail-type')}: {detail.get('ImageId', '')} {detail.get('State', '')}"


class Timeline:
    """Prints what happens in the sandbox as it happens."""

    def __init__(self, sandbox: Sandbox | None, console: Console | None = None) -> None:
        self.sandbox = sandbox
        self.console = console or Console()
        self._sns_shown = False

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
        """The alert twice, as it lands: in Slack (rendered as text) and on the SNS topic."""
        severity = str(alert.message.get("severity", "info"))
        slack = render_finding_as_slack(alert.message)
        self.console.print(
            Panel(Text(slack), title="Slack", title_align="left", border_style=SEVERITY_STYLE.get(severity, "white"))
        )
        if self._sns_shown:
            attributes = ", ".join(f"{k}={v}" for k, v in sorted(alert.attributes.items()))
            sns = f"Subject: {alert.subject}\nMessageAttributes: {attributes}\nMessage: (JSON finding, shape as above)"
        else:
            sns = render_sns_message(alert)
            self._sns_shown = True
        self.console.print(Panel(Text(sns), title="SNS", title_align="left", border_style="dim"))

    def settle(self) -> list[Delivery]:
        """Let EventBridge deliver everything pending, then show the alerts that went out."""
        if self.sandbox is None:
            raise RuntimeError("this timeline only prints; it has no sandbox to run")
        deliveries = self.sandbox.run(on_delivery=self.delivery)
        for alert in self.sandbox.alerts():
            self.alert(alert)
        return deliveries
