"""What the demo prints, in one of two forms.

The short form (the default) is one line per event, what happened → what amiguard did, coloured by the most
severe finding, then one alert as Slack and SNS show it and a summary table (see :mod:`.oneline`). The full form
(``--full``) prints as it happens: each step of an act, each delivery (rule, function, outcome) and every alert.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from amiguard_cli.demo.oneline import (
    SEVERITY_RANK,
    EventLine,
    group_events,
    plural,
    summarize,
    what_amiguard_did,
    what_happened,
)
from amiguard_cli.demo.render import render_finding_as_slack, render_sns_message
from amiguard_cli.sandbox.account import Alert, Delivery, Sandbox

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "green"}
SEVERITY_LABEL = {"critical": "CRIT", "high": "HIGH", "medium": "MED", "low": "LOW", "info": "INFO"}


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
    """Prints what happens in the sandbox: as it happens (``full``), or one line per event once it is known."""

    def __init__(
        self,
        sandbox: Sandbox | None,
        console: Console | None = None,
        *,
        full: bool = True,
        home: tuple[str, str] | None = None,
    ) -> None:
        """``home``: the (account, region) an event line names only when an event comes from elsewhere (by
        default the sandbox's)."""
        self.sandbox = sandbox
        self.home = home or ((sandbox.account, sandbox.home) if sandbox else ("", ""))
        self.console = console or Console()
        self.full = full
        self.alerts: list[Alert] = []  # every alert published, in order
        self.deliveries: list[Delivery] = []  # every delivery shown, in order
        self._pending: list[Delivery] = []  # short form: delivered, line not printed yet
        self._sns_shown = False

    def act(self, title: str) -> None:
        self.flush()
        self.console.rule(f"[bold]{title}")

    def step(self, actor: str, text: str) -> None:
        """What the act does (a person's call, a setting, what the account looks like now): full form only."""
        if self.full:
            self.console.print(f"[bold]{actor}[/]  {text}")

    def delivery(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if not self.full:
            self._pending.append(delivery)
            return
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
        """The alert twice, as it lands: in Slack (rendered as text) and on the SNS topic (full form; the short
        form shows one of them at the end)."""
        self.alerts.append(alert)
        if self.full:
            self._print_alert(alert, brief_sns=self._sns_shown)
            self._sns_shown = True

    def _print_alert(self, alert: Alert, *, brief_sns: bool = False) -> None:
        severity = str(alert.message.get("severity", "info"))
        slack = render_finding_as_slack(alert.message)
        title = "Slack" if self.full else "Slack (as the notifier posts it once SlackWebhookSecretArn is set)"
        self.console.print(
            Panel(Text(slack), title=title, title_align="left", border_style=SEVERITY_STYLE.get(severity, "white"))
        )
        if brief_sns:
            attributes = ", ".join(f"{k}={v}" for k, v in sorted(alert.attributes.items()))
            sns = f"Subject: {alert.subject}\nMessageAttributes: {attributes}\nMessage: (JSON finding, shape as above)"
        else:
            sns = render_sns_message(alert, indent=2 if self.full else None)
        self.console.print(Panel(Text(sns), title="SNS", title_align="left", border_style="dim"))

    def settle(self) -> list[Delivery]:
        """Let EventBridge deliver everything pending, then show the alerts that went out."""
        if self.sandbox is None:
            raise RuntimeError("this timeline only prints; it has no sandbox to run")
        deliveries = self.sandbox.run(on_delivery=self.delivery)
        for alert in self.sandbox.alerts():
            self.alert(alert)
        return deliveries

    # --- the short form ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Short form: print a line for each event delivered since the last flush (the quiet ones counted)."""
        if self.full or not self._pending:
            self._pending = []
            return
        events, self._pending = group_events(self._pending), []
        account, home = self.home
        # A grid, so that a line too long for the terminal wraps under its text, not under the severity.
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=4)
        grid.add_column()
        for event in events:
            if event.shown:
                grid.add_row(*self._event_line(event, account, home))
        quiet = [event for event in events if not event.shown]
        if quiet:
            own = sum(event.own_call for event in quiet)
            alerts = sum(event.alert_delivery for event in quiet)
            other = len(quiet) - own - alerts
            parts = [plural(own, "own call") + " ignored"] if own else []
            parts += [plural(alerts, "alert") + " to the notifier"] if alerts else []
            parts += [f"{other} more with nothing to do"] if other else []
            grid.add_row("", Text(", ".join(parts), style="dim"))
        self.console.print(grid)

    @staticmethod
    def _event_line(event: EventLine, account: str, home: str) -> tuple[Text, Text]:
        """Severity, then what happened → what amiguard did, coloured by the most severe finding."""
        severity = event.severity
        style = "bold red" if event.failed else SEVERITY_STYLE.get(severity or "", "dim")
        label = "FAIL" if event.failed else SEVERITY_LABEL.get(severity or "", "·")
        line = Text(what_happened(event, account=account, home=home))
        line.append(" → ", style="dim")
        line.append(what_amiguard_did(event), style=style if (severity or event.failed) else "dim")
        return Text(label, style=style), line

    def finish(self) -> None:
        """The close: (short form) one alert as it lands, then, in both forms, a table of what was found."""
        self.flush()
        if not self.full and self.alerts:
            example = min(
                self.alerts, key=lambda a: SEVERITY_RANK.get(str(a.message.get("severity")), 99)
            )  # the first of the most severe
            self.console.rule(f"[bold]{len(self.alerts)} alerts on the SNS topic; one of them, as it lands")
            self._print_alert(example)
        findings = [f for d in self.deliveries for f in (d.result or {}).get("findings", [])]
        if findings:
            self.console.print(summary_table(findings))


def summary_table(findings: list[dict[str, Any]]) -> Table:
    """Every finding type raised, most severe first: how often, what amiguard did, the longest exposure."""
    table = Table(
        title="What amiguard found and did (exposure: the longest)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )
    table.add_column("finding", no_wrap=True)
    table.add_column("sev", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("action", overflow="fold")
    table.add_column("exposure", no_wrap=True)
    for row in summarize(findings):
        style = SEVERITY_STYLE.get(row.severity, "")
        label = Text(SEVERITY_LABEL.get(row.severity, row.severity), style=style)
        table.add_row(row.type, label, str(row.count), row.actions, row.exposure)
    return table
