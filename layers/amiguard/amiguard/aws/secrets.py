"""Secrets Manager adapter for the alert path's dedup key (the notifier reads its webhook in amiguard.slack)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class SecretKey:
    """The bytes of a secret, read at the first call and kept for the execution environment's life.

    One GetSecretValue per cold start, made on the alert path (after the remediation), never at import or
    start-up; the client too is made then (``secretsmanager`` is a factory). Rotating the secret starts new
    dedup rows: at worst one repeated alert per finding.
    """

    def __init__(self, secretsmanager: Callable[[], SecretsManagerClient], secret_arn: str) -> None:
        self._client = secretsmanager
        self._arn = secret_arn
        self._value: bytes | None = None

    def __call__(self) -> bytes:
        if self._value is None:
            self._value = self._client().get_secret_value(SecretId=self._arn)["SecretString"].encode()
        return self._value


def secret_region(secret_arn: str) -> str | None:
    """``arn:aws:secretsmanager:<region>:...`` → region."""
    parts = secret_arn.split(":")
    return parts[3] if len(parts) > 6 and parts[3] else None
