"""notifier: alerts from the SNS topic reach a Slack webhook (served on loopback) as Block Kit, once.

The sandbox routes public_guard's alert through the template's SNS subscription to the notifier's real
handler, which reads the webhook URL from Secrets Manager (moto) and posts to the local server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from amiguard.slack.blocks import finding_blocks
from amiguard.slack.webhook import SlackDeliveryError, SlackWebhook, retry_handlers
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user
from tests.factories import a_finding

from ..conftest import bake_image
from .slack_webhook import Answer, WebhookServer


@pytest.fixture
def slack() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(parameters={"Mode": "enforce"}) as sb:
        yield sb


def _store_secret(sb: Sandbox, value: str, name: str = "amiguard/slack-webhook") -> str:
    arn: str = sb.internal_client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
    return arn


def _make_public(sb: Sandbox, name: str = "payments-api-2026-11") -> str:
    image_id: str = bake_image(sb, name=name)["ImageId"]
    with acting_as(iam_user("dev-bob")):
        sb.client("ec2").modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    return image_id


def _notifier(sb: Sandbox) -> list[Any]:
    return [delivery for delivery in sb.deliveries if delivery.function == "notifier"]


def test_block_kit_message_reaches_the_webhook_when_an_ami_is_made_public(
    sandbox: Sandbox, slack: WebhookServer
) -> None:
    sandbox.reconfigure(SlackWebhookSecretArn=_store_secret(sandbox, slack.url))
    image_id = _make_public(sandbox)

    sandbox.run()

    [received] = slack.received
    assert received.path == "/services/T000/B000/XXXXsecretXXXX"
    assert received.headers["Content-Type"].startswith("application/json")
    blocks = received.payload["blocks"]
    assert blocks[0]["text"]["text"] == "\U0001f534 Critical \u00b7 public share"
    fields = {field["text"].split("\n")[0]: field["text"].split("\n", 1)[1] for field in blocks[2]["fields"]}
    assert image_id in fields["*AMI*"] and "payments-api-2026-11" in fields["*AMI*"]
    assert fields["*Action taken*"] == "revoked"
    assert fields["*Actor*"] == "arn:aws:iam::123456789012:user/dev-bob"
    assert received.payload["text"].startswith("\U0001f534 CRITICAL public-share:")
    assert [d.result["reason"] for d in _notifier(sandbox)] == ["delivered"]


def test_secret_is_read_once_when_several_alerts_are_delivered(sandbox: Sandbox, slack: WebhookServer) -> None:
    webhook = _store_secret(sandbox, slack.url)
    sandbox.reconfigure(SlackWebhookSecretArn=webhook)
    reads: list[str] = []
    boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]  # the handlers' clients' session
        # the webhook's reads only (public_guard reads the alert dedup key, once per environment, too)
        "provide-client-params.secrets-manager.GetSecretValue",
        lambda params, **_: reads.append("read") if params["SecretId"] == webhook else None,
    )

    for name in ("one", "two", "three"):
        _make_public(sandbox, name=name)
        sandbox.run()

    assert len(slack.received) == 3
    assert len(_notifier(sandbox)) == 3
    assert reads == ["read"]


def test_nothing_is_posted_when_no_secret_is_configured(sandbox: Sandbox, slack: WebhookServer) -> None:
    _make_public(sandbox)

    sandbox.run()

    assert slack.received == []
    assert [d.result["reason"] for d in _notifier(sandbox)] == ["slack-off"]


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (None, "does not exist"),
        ("xoxb-a-bot-token-not-a-webhook", "does not hold a webhook URL"),
    ],
)
def test_alert_is_dead_lettered_with_a_clear_reason_when_the_secret_is_missing_or_not_a_url(
    sandbox: Sandbox, slack: WebhookServer, caplog: pytest.LogCaptureFixture, secret: str | None, expected: str
) -> None:
    arn = (
        _store_secret(sandbox, secret)
        if secret
        else "arn:aws:secretsmanager:us-east-1:123456789012:secret:amiguard/gone-AbCdEf"
    )
    sandbox.reconfigure(SlackWebhookSecretArn=arn)
    _make_public(sandbox)

    sandbox.run()

    [dead] = [d for d in sandbox.dead_letters if d.function == "notifier"]
    assert dead.error is not None and expected in dead.error and arn in dead.error
    assert dead.event["Records"][0]["Sns"]["Message"]  # the whole SNS record is kept for a redrive
    assert "xoxb-a-bot-token" not in dead.error + dead.output + caplog.text
    assert "alert not delivered to Slack" in dead.output


def test_alert_is_dead_lettered_when_slack_rejects_it(sandbox: Sandbox, slack: WebhookServer) -> None:
    slack.default = Answer(404, "no_service")
    sandbox.reconfigure(SlackWebhookSecretArn=_store_secret(sandbox, slack.url))
    _make_public(sandbox)

    sandbox.run()

    [dead] = [d for d in sandbox.dead_letters if d.function == "notifier"]
    assert dead.error == "SlackDeliveryError: Slack answered HTTP 404: 'no_service'"
    assert len(slack.received) == 3  # Lambda's first try and two retries


def test_malformed_message_is_dropped_with_the_reason_when_it_is_not_a_finding(
    sandbox: Sandbox, slack: WebhookServer
) -> None:
    sandbox.reconfigure(SlackWebhookSecretArn=_store_secret(sandbox, slack.url))
    sandbox.internal_client("sns").publish(TopicArn=sandbox.topic_arn, Message='{"hello": "world"}')

    sandbox.run()

    [delivery] = _notifier(sandbox)
    assert delivery.result["status"] == "dropped" and delivery.result["reason"] == "malformed-alert"
    assert slack.received == []


def test_unicode_name_arrives_intact_when_the_ami_name_is_not_ascii(sandbox: Sandbox, slack: WebhookServer) -> None:
    sandbox.reconfigure(SlackWebhookSecretArn=_store_secret(sandbox, slack.url))
    finding = a_finding(image_name="Zahlungs-API \u65e5\u672c\u8a9e \U0001f680")
    sandbox.internal_client("sns").publish(TopicArn=sandbox.topic_arn, Message=finding.model_dump_json())

    sandbox.run()

    [received] = slack.received
    assert "Zahlungs-API \u65e5\u672c\u8a9e \U0001f680" in str(received.payload)


# --- the webhook adapter alone: retries -------------------------------------------------------------------

FAST = FixedValueRetryIntervalCalculator(0.01)


def test_message_is_delivered_when_slack_rate_limits_once(slack: WebhookServer) -> None:
    slack.answers = [Answer(429, "rate_limited", {"Retry-After": "0"})]
    webhook = SlackWebhook(lambda: slack.url, handlers=retry_handlers(interval=FAST))

    webhook.post(finding_blocks(a_finding()))

    first, retry = slack.received
    assert first.payload == retry.payload


def test_message_is_delivered_when_slack_fails_with_5xx_then_recovers(slack: WebhookServer) -> None:
    slack.answers = [Answer(503, "service_unavailable"), Answer(502, "bad_gateway")]
    webhook = SlackWebhook(lambda: slack.url, handlers=retry_handlers(interval=FAST))

    webhook.post(finding_blocks(a_finding()))

    assert len(slack.received) == 3


def test_error_is_raised_without_the_url_when_slack_keeps_failing(
    slack: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    slack.default = Answer(500, "internal_error")
    webhook = SlackWebhook(lambda: slack.url, handlers=retry_handlers(interval=FAST))

    with caplog.at_level(logging.DEBUG), pytest.raises(SlackDeliveryError) as raised:
        webhook.post(finding_blocks(a_finding()))

    assert str(raised.value) == "Slack answered HTTP 500: 'internal_error'"
    assert len(slack.received) == 3  # the first attempt and two retries
    assert "XXXXsecretXXXX" not in caplog.text


def test_long_retry_after_is_left_to_lambda_when_slack_asks_for_more_than_the_bound(slack: WebhookServer) -> None:
    slack.default = Answer(429, "rate_limited", {"Retry-After": "30"})
    webhook = SlackWebhook(lambda: slack.url, handlers=retry_handlers(interval=FAST))

    with pytest.raises(SlackDeliveryError, match="HTTP 429"):
        webhook.post(finding_blocks(a_finding()))

    assert len(slack.received) == 1


def test_error_names_no_url_when_the_webhook_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    url = "http://127.0.0.1:9/services/T000/B000/XXXXsecretXXXX"  # discard port: connection refused
    webhook = SlackWebhook(lambda: url, handlers=retry_handlers(attempts=1, interval=FAST))

    with caplog.at_level(logging.DEBUG), pytest.raises(SlackDeliveryError, match="unreachable") as raised:
        webhook.post(finding_blocks(a_finding()))

    assert "XXXXsecretXXXX" not in str(raised.value) + caplog.text


# --- the secret never reaches a log, even with botocore at DEBUG -----------------------------------------


def test_webhook_url_never_reaches_a_log_when_botocore_logs_at_debug(
    sandbox: Sandbox, slack: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = f'{{"url": "{slack.url}"}}'
    sandbox.reconfigure(SlackWebhookSecretArn=_store_secret(sandbox, secret))
    _make_public(sandbox)

    with caplog.at_level(logging.DEBUG):  # the root logger: botocore.parsers, botocore.endpoint, urllib3 ...
        sandbox.run()

    assert len(slack.received) == 1
    assert any(record.name == "botocore.parsers" for record in caplog.records)  # DEBUG really was on
    logged = caplog.text + "".join(delivery.output for delivery in _notifier(sandbox))
    assert "XXXXsecretXXXX" not in logged
    assert "SecretString" not in logged


def test_other_clients_still_log_their_bodies_when_botocore_logs_at_debug(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        _make_public(sandbox, name="debugging-ec2")
        sandbox.run()

    assert any("Response body" in record.getMessage() for record in caplog.records if record.name == "botocore.parsers")


def test_hostile_alert_fields_reach_slack_escaped_when_published_to_the_topic(
    sandbox: Sandbox, slack: WebhookServer
) -> None:
    sandbox.reconfigure(SlackWebhookSecretArn=_store_secret(sandbox, slack.url))
    finding = a_finding(account="<!channel>", region="<!here|here>", image_id="<https://evil.example|ami>")
    sandbox.internal_client("sns").publish(TopicArn=sandbox.topic_arn, Message=finding.model_dump_json())

    sandbox.run()

    [received] = slack.received
    text = str(received.payload)
    assert "<!channel>" not in text and "<!here" not in text and "<https://evil.example" not in text


def test_alert_with_a_non_finite_exposure_is_dropped_when_published_to_the_topic(
    sandbox: Sandbox, slack: WebhookServer
) -> None:
    sandbox.reconfigure(SlackWebhookSecretArn=_store_secret(sandbox, slack.url))
    message = a_finding().model_dump_json().replace('"exposure_seconds":2.4', '"exposure_seconds":NaN')
    sandbox.internal_client("sns").publish(TopicArn=sandbox.topic_arn, Message=message)

    sandbox.run()

    [delivery] = _notifier(sandbox)
    assert delivery.result["reason"] == "malformed-alert"
    assert slack.received == []
