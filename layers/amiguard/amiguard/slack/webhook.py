"""Posting to a Slack incoming webhook whose URL lives in Secrets Manager.

The URL is a credential: anyone holding it can post to the channel. It is read through Powertools
Parameters (cached for ``max_age`` seconds, so warm invocations make no Secrets Manager call), it is never
put in the environment, never logged (slack_sdk's own logger, which prints URLs at DEBUG and INFO, is
silenced) and never part of an error message.

Slack's 429 (honouring ``Retry-After`` up to a bound) and 5xx answers and connection failures are retried by
slack_sdk's retry handlers; what still fails raises :class:`SlackDeliveryError`, so Lambda retries the SNS
message and in the end parks it in the dead-letter queue. Nothing is lost. A request sent whose answer never
came raises :class:`SlackPostUnconfirmed` instead: it may have been posted (see amiguard.services.notifier).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler, default_interval_calculator
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from amiguard.aws.errors import error_code

SECRET_MAX_AGE = 300  # seconds a fetched webhook URL is reused; a rotated secret is picked up within this
TIMEOUT = 5  # seconds per HTTP attempt; Slack answers in well under a second
MAX_RETRY_AFTER = 10  # seconds: a longer Retry-After is left to Lambda's own retry
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# slack_sdk logs the webhook URL (DEBUG: every request; INFO: every retry). Its records go nowhere.
_QUIET = logging.getLogger("amiguard.slack_sdk")
_QUIET.setLevel(logging.CRITICAL + 1)
_QUIET.propagate = False
_QUIET.disabled = True


class SlackError(RuntimeError):
    """Base of everything that keeps an alert from Slack. Messages never contain the webhook URL."""


class SlackConfigError(SlackError):
    """The webhook secret is missing, unreadable, or does not hold a webhook URL."""


class SlackDeliveryError(SlackError):
    """Slack did not accept the message after the retries."""


class SlackPostUnconfirmed(SlackError):
    """The request reached Slack (connected, sent) and its answer never came: the post may well be in the channel.

    slack_sdk does not retry this (a retry could post twice); the notifier treats it as sent.
    """


class SecretSource(Protocol):
    """Powertools' ``SecretsProvider`` (or anything with its ``get``)."""

    def get(self, name: str, max_age: int | None = None, transform: Any = None, **sdk_options: Any) -> Any: ...


def webhook_url_from(value: str | bytes, secret_id: str) -> str:
    """The URL in a secret holding it plain or as JSON ``{"url": ...}`` (also ``webhook_url``, ``webhookUrl``)."""
    text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = {}
        keys = ("url", "webhook_url", "webhookUrl")
        found = [document[k] for k in keys if isinstance(document, dict) and isinstance(document.get(k), str)]
        text = found[0].strip() if found else ""
    parts = urlsplit(text)
    secure = parts.scheme == "https" and bool(parts.hostname)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS  # local test servers only
    if not (secure or loopback) or any(char.isspace() for char in text):
        raise SlackConfigError(
            f"Slack webhook secret {secret_id} does not hold a webhook URL "
            '(expected https://hooks.slack.com/services/..., plain or as JSON {"url": ...}; the value is not shown)'
        )
    return text


class SlackWebhookSecret:
    """The webhook URL, read from Secrets Manager through Powertools Parameters and cached."""

    def __init__(self, provider: SecretSource, secret_id: str, *, max_age: int = SECRET_MAX_AGE) -> None:
        self._provider = provider
        self.secret_id = secret_id
        self._max_age = max_age

    def url(self) -> str:
        try:
            value = self._provider.get(self.secret_id, max_age=self._max_age)
        except GetParameterError as error:
            cause = error.__cause__ or error.__context__  # Powertools raises it inside its except
            code = error_code(cause) if isinstance(cause, ClientError) else type(cause or error).__name__
            if code == "ResourceNotFoundException":
                problem = "does not exist (or has no current value)"
            elif code == "AccessDeniedException":
                problem = "cannot be read by this function (access denied)"
            else:
                problem = f"could not be read ({code})"
            raise SlackConfigError(f"Slack webhook secret {self.secret_id} {problem}") from None
        return webhook_url_from(value, self.secret_id)


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, but a ``Retry-After`` longer than ``max_wait`` is not slept through."""

    def __init__(self, max_retry_count: int = 2, max_wait: int = MAX_RETRY_AFTER) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        assert response is not None
        values = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"])
        try:
            return int(values[0]) <= self.max_wait
        except (ValueError, IndexError):
            return True


class AnyServerErrorRetryHandler(ServerErrorRetryHandler):
    """slack_sdk's 5xx handler, for every 5xx (it retries only 500 and 503)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code <= 599


def retry_handlers(
    *, attempts: int = 2, interval: RetryIntervalCalculator = default_interval_calculator
) -> list[RetryHandler]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=attempts, interval_calculator=interval),
        BoundedRateLimitRetryHandler(max_retry_count=attempts),
        AnyServerErrorRetryHandler(max_retry_count=attempts, interval_calculator=interval),
    ]


class SlackWebhook:
    """Posts Block Kit payloads to the webhook whose URL ``url_source`` returns."""

    def __init__(
        self,
        url_source: Callable[[], str],
        *,
        handlers: list[RetryHandler] | None = None,
        timeout: int = TIMEOUT,
    ) -> None:
        self._url_source = url_source
        self._handlers = handlers if handlers is not None else retry_handlers()
        self._timeout = timeout
        self._clients: dict[str, WebhookClient] = {}

    def _client(self, url: str) -> WebhookClient:
        if url not in self._clients:
            self._clients.clear()  # the secret was rotated: drop the old client
            self._clients[url] = WebhookClient(url, timeout=self._timeout, logger=_QUIET, retry_handlers=self._handlers)
        return self._clients[url]

    def post(self, payload: dict[str, Any]) -> None:
        url = self._url_source()
        try:
            response = self._client(url).send_dict(payload)
        except TimeoutError as error:
            # Raised by the read of the answer (urllib wraps connection-phase timeouts in URLError, below).
            raise SlackPostUnconfirmed(f"Slack webhook sent, no answer within {self._timeout} s: {error}") from None
        except Exception as error:  # connection refused, DNS, connect timeout... after slack_sdk's retries
            detail = str(error).replace(url, "<webhook>")
            raise SlackDeliveryError(f"Slack webhook unreachable: {type(error).__name__}: {detail}") from None
        if response.status_code != 200:
            body = (response.body or "").replace(url, "<webhook>")[:200]
            raise SlackDeliveryError(f"Slack answered HTTP {response.status_code}: {body!r}")


def secret_region(secret_id: str) -> str | None:
    """The region in a secret's ARN (``arn:aws:secretsmanager:<region>:...``); None for a bare name."""
    parts = secret_id.split(":")
    return parts[3] if secret_id.startswith("arn:") and len(parts) > 3 and parts[3] else None
