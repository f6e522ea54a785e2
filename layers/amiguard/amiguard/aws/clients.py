"""Client factory: one cached client per (service, region), with botocore's adaptive retries."""

from __future__ import annotations

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


class ClientFactory:
    """Makes boto3 clients on first use. Pass a ``boto3.Session`` to use other credentials (``--profile``)."""

    def __init__(self, session: boto3.Session | None = None, config: Config = RETRY_CONFIG) -> None:
        self._session = session
        self._config = config
        self._client = cache(self._make)

    def _make(self, service: str, region: str | None) -> Any:
        if self._session is not None:
            return self._session.client(service, region_name=region, config=self._config)  # type: ignore[call-overload]
        return boto3.client(service, region_name=region, config=self._config)  # type: ignore[call-overload]

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
