"""notifier: each alert reaches Slack at most once, however often SNS delivers it (and whatever Slack answers).

The alert id is the finding's ledger key; the notifier claims it in the ledger before posting and settles it
after, so a redelivered SNS message, a second Publish of the same finding (its first answer was lost) and a
redrive from the failure queue are skipped. A post whose answer never came is treated as sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Delivery, Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

from ..conftest import bake_image
from .slack_webhook import Answer, WebhookServer


@pytest.fixture
def slack() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


@pytest.fixture
def sandbox(slack: WebhookServer) -> Iterator[Sandbox]:
    with Sandbox(parameters={"Mode": "enforce"}) as sb:
        arn = sb.internal_client("secretsmanager").create_secret(Name="amiguard/slack", SecretString=slack.url)["ARN"]
        sb.reconfigure(SlackWebhookSecretArn=arn)
        yield sb


def _make_public(sb: Sandbox) -> str:
    image_id: str = bake_image(sb)["ImageId"]
    with acting_as(iam_user("dev-bob")):
        sb.client("ec2").modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    return image_id


def _notifier(sb: Sandbox) -> list[Delivery]:
    return [delivery for delivery in sb.deliveries if delivery.function == "notifier"]


def _reasons(sb: Sandbox) -> list[Any]:
    return [delivery.result["reason"] if delivery.result else delivery.error for delivery in _notifier(sb)]


def test_alert_is_posted_once_when_sns_delivers_the_same_message_five_times(
    sandbox: Sandbox, slack: WebhookServer
) -> None:
    _make_public(sandbox)
    sandbox.run()
    [first] = _notifier(sandbox)

    for _ in range(4):
        sandbox.redeliver(first)

    assert len(slack.received) == 1
    assert _reasons(sandbox) == ["delivered"] + ["already-posted"] * 4
    assert sandbox.dead_letters == []


def test_second_copy_is_skipped_when_the_same_finding_is_published_twice(
    sandbox: Sandbox, slack: WebhookServer
) -> None:
    # A Publish whose answer was lost is published again: two SNS messages (two MessageIds), one alert.
    _make_public(sandbox)
    sandbox.run()
    [first] = _notifier(sandbox)
    sns = first.event["Records"][0]["Sns"]
    attributes = {k: {"DataType": "String", "StringValue": v["Value"]} for k, v in sns["MessageAttributes"].items()}
    sandbox.internal_client("sns").publish(
        TopicArn=sandbox.topic_arn, Subject=sns["Subject"], Message=sns["Message"], MessageAttributes=attributes
    )

    sandbox.run()

    assert len(slack.received) == 1
    assert _reasons(sandbox) == ["delivered", "already-posted"]


def test_post_is_treated_as_sent_and_not_repeated_when_slack_never_answers(
    sandbox: Sandbox, slack: WebhookServer
) -> None:
    slack.answers = [Answer(hang=7)]  # longer than the webhook's 5 s read timeout
    _make_public(sandbox)

    sandbox.run()
    [first] = _notifier(sandbox)
    sandbox.redeliver(first)

    assert len(slack.received) == 1  # Slack has it; nothing posts it a second time
    assert _reasons(sandbox) == ["posted-unconfirmed", "already-posted"]
    assert first.attempts == 1 and sandbox.dead_letters == []
    assert '"SlackPostsUnconfirmed"' in first.output


def test_retry_posts_when_slack_refused_the_first_post(sandbox: Sandbox, slack: WebhookServer) -> None:
    slack.answers = [Answer(404, "no_service")]  # an answer: definitely not posted, so the claim is given back
    _make_public(sandbox)

    sandbox.run()
    [first] = _notifier(sandbox)
    sandbox.redeliver(first)

    assert [received.payload["text"] == slack.received[0].payload["text"] for received in slack.received] == [True] * 2
    assert first.attempts == 2 and first.result is not None and first.result["reason"] == "delivered"
    assert _reasons(sandbox) == ["delivered", "already-posted"]
