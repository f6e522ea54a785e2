"""What a Slack webhook secret may hold, and what a bad one says (never the value)."""

from __future__ import annotations

import pytest

from amiguard.slack.webhook import SlackConfigError, secret_region, webhook_url_from

SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:amiguard/slack-AbCdEf"
URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"


@pytest.mark.parametrize(
    "value",
    [
        URL,
        f"  {URL}\n",
        URL.encode(),
        f'{{"url": "{URL}"}}',
        f'{{"webhook_url": "{URL}"}}',
        f'{{"webhookUrl": "{URL}"}}',
    ],
)
def test_url_is_read_when_secret_holds_it_plain_or_as_json(value: str | bytes) -> None:
    assert webhook_url_from(value, SECRET) == URL


def test_loopback_http_is_accepted_when_a_local_test_server_stands_in() -> None:
    assert webhook_url_from("http://127.0.0.1:8080/hook", SECRET) == "http://127.0.0.1:8080/hook"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not a url",
        "xoxb-1234-token-instead-of-url",
        "http://hooks.slack.com/services/T000/B000/XXXX",  # cleartext to a real host
        "ftp://hooks.slack.com/x",
        '{"token": "https://hooks.slack.com/services/T/B/X"}',
        "{broken json",
        "https://hooks.slack.com/services/T000/B000/XX XX",
    ],
)
def test_clear_error_without_the_value_when_secret_holds_no_webhook_url(value: str) -> None:
    with pytest.raises(SlackConfigError) as raised:
        webhook_url_from(value, SECRET)

    message = str(raised.value)
    assert SECRET in message and "does not hold a webhook URL" in message
    if value.strip():
        assert value.strip() not in message


@pytest.mark.parametrize(
    ("secret_id", "region"), [(SECRET, "eu-west-1"), ("amiguard/slack", None), ("arn:aws:secretsmanager", None)]
)
def test_client_region_follows_the_arn_when_secret_is_named_by_arn(secret_id: str, region: str | None) -> None:
    assert secret_region(secret_id) == region
