"""The demo's rendering of an alert as Slack shows it and as SNS delivers it."""

from __future__ import annotations

from amiguard_cli.demo.render import mrkdwn_to_text, render_finding_as_slack, render_sns_message
from amiguard_cli.sandbox.account import Alert
from tests.factories import a_finding


def test_slack_text_shows_every_part_of_the_message_when_rendered() -> None:
    text = render_finding_as_slack(a_finding(image_name="<b&w>"))

    lines = text.splitlines()
    assert lines[0] == "\U0001f534 Critical \u00b7 public share"
    assert "  AMI:           ami-0123456789abcdef0 (https://us-east-1.console.aws.amazon.com" in text
    assert "\u00b7 <b&w>" in text  # entities decoded back for the reader
    assert "  Action taken:  revoked" in lines
    assert "[ Open in the EC2 console ] \u2192 https://" in text
    assert "*" not in text and "`" not in text


def test_slack_text_is_built_from_the_alert_json_when_given_the_sns_message() -> None:
    assert render_finding_as_slack(a_finding().to_message()) == render_finding_as_slack(a_finding())


def test_links_and_emphasis_read_plainly_when_mrkdwn_is_converted() -> None:
    assert (
        mrkdwn_to_text("*AMI*\n<https://x.example/a|ami-1> _quiet_ `code`")
        == "AMI\nami-1 (https://x.example/a) quiet code"
    )


def test_sns_message_shows_subject_attributes_and_json_when_rendered() -> None:
    alert = Alert(
        "[amiguard] CRITICAL public-share ami-1 (revoked)", {"type": "public-share"}, {"severity": "critical"}
    )

    text = render_sns_message(alert)

    assert text.splitlines()[:3] == [
        "Subject: [amiguard] CRITICAL public-share ami-1 (revoked)",
        "MessageAttributes: severity=critical",
        "Message:",
    ]
    assert '"type": "public-share"' in text
