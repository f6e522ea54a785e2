"""Client factory: one cached client per (service, region), with botocore's adaptive retries."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient

# Adaptive mode: standard retries (throttling, 5xx, transient network errors) plus client-side rate limiting,
# so a throttling storm slows amiguard down instead of failing it. What still fails is raised: Lambda retries
# the event and, in the end, parks it in the dead-letter queue.
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=20,
    user_agent_appid="amiguard",  # type: ignore[call-arg]  # botocore >= 1.32; the stubs lag
)


# Services whose responses are credentials (a Slack webhook URL in a secret): their bodies never reach a log.
SECRET_SERVICES = frozenset({"secretsmanager"})
# botocore.parsers logs every response body at DEBUG ("Response body: b'{\"SecretString\": ...}'"), and
# botocore.endpoint the exceptions it meets on the way; while such a client parses, neither logs anything.
BODY_LOGGERS = ("botocore.parsers", "botocore.endpoint")

_parsing_secret: ContextVar[bool] = ContextVar("amiguard_parsing_secret", default=False)


class _NothingWhileParsingSecrets(logging.Filter):
    """Drops every record of the body loggers while this thread parses a secret-bearing response."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _parsing_secret.get()


_BODY_FILTER = _NothingWhileParsingSecrets()


def _secret_parse_starts(**_: Any) -> None:
    _parsing_secret.set(True)


def _secret_parse_ends(**_: Any) -> None:
    _parsing_secret.set(False)


def keep_bodies_out_of_logs(client: Any) -> Any:
    """Make ``client``'s responses invisible to botocore's logging at every level, DEBUG included.

    botocore emits ``before-parse`` just before it parses (and logs) a response and ``response-received``
    just after; between the two, a filter on the body loggers drops every record of this thread. A parse that
    fails leaves the flag set: this thread then logs less, never more.
    """
    for name in BODY_LOGGERS:
        logging.getLogger(name).addFilter(_BODY_FILTER)  # the same filter once, however many clients
    client.meta.events.register_first("before-parse", _secret_parse_starts, unique_id="amiguard-quiet-start")
    client.meta.events.register_last("response-received", _secret_parse_ends, unique_id="amiguard-quiet-end")
    return client


class ClientFactory:
    """Makes boto3 clients on first use. Pass a ``boto3.Session`` to use other credentials (``--profile``)."""

    def __init__(self, session: boto3.Session | None = None, config: Config = RETRY_CONFIG) -> None:
        self._session = session
        self._config = config
        self._client = cache(self._make)

    def _make(self, service: str, region: str | None) -> Any:
        if self._session is not None:
            client = self._session.client(service, region_name=region, config=self._config)  # type: ignore[call-overload]
        else:
            client = boto3.client(service, region_name=region, config=self._config)  # type: ignore[call-overload]
        return keep_bodies_out_of_logs(client) if service in SECRET_SERVICES else client

    def client(self, service: str, region: str | None = None) -> Any:
        return self._client(service, region)

    def ec2(self, region: str) -> EC2Client:
        client: EC2Client = self._client("ec2", region)
        return client

    def sns(self, region: str | None = None) -> SNSClient:
        client: SNSClient = self._client("sns", region)
        return client

    def dynamodb(self, region: str | None = None) -> DynamoDBClient:
        client: DynamoDBClient = self._client("dynamodb", region)
        return client

    def secretsmanager(self, region: str | None = None) -> SecretsManagerClient:
        client: SecretsManagerClient = self._client("secretsmanager", region)
        return client
