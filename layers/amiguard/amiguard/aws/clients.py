"""Client factory: one cached client per (service, region), botocore's adaptive retries bounded by a deadline.

Retries are botocore's own (``adaptive`` mode: standard retries of throttling, 5xx, connection errors and read
timeouts, plus client-side rate limiting that slows a throttled client down). What botocore does not know is
the caller's deadline: 8 attempts with exponential backoff of up to 20 s each can take over a minute, past a
function's 60 s timeout, and Lambda then kills the attempt wherever it is, mid-remediation. So each client gets
one small hook, :class:`DeadlineBudget`, and no retry loop of our own (botocore's classification of what is
retryable, its backoff, its retry quota and its rate limiter stay exactly as AWS ships them):

- on ``needs-retry`` it vetoes a retry whose worst-case backoff plus one more attempt (connect + read timeout)
  would not end a reserve before the deadline: the error is raised while there is time to raise it, so Lambda
  retries the event (idempotent) and what still fails lands in the failure queue;
- on ``before-call`` it refuses to start a call that could not end before the deadline even on its first
  attempt (:class:`DeadlineNear`, a ``BotoCoreError``, raised the same way).

Without a deadline (the CLI, a scan on a laptop) nothing is bounded but botocore's attempts.

Per-call timeouts (:data:`TIMEOUTS`) are chosen per service: a healthy call answers in milliseconds (DynamoDB,
SNS, Secrets Manager) or in a few seconds (EC2's DescribeImages of a large account, one page), so an attempt
that hangs is cut after a few times its normal latency and retried instead of eating the function's time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_securityhub import SecurityHubClient
    from mypy_boto3_sns import SNSClient

# botocore's ``max_attempts`` counts retries: a call is tried up to 9 times (the deadline may end it sooner).
MAX_ATTEMPTS = 8
ATTEMPTS_PER_CALL = MAX_ATTEMPTS + 1
# No timeouts here: each client takes its service's (TIMEOUTS), unless a caller's config sets its own.
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": MAX_ATTEMPTS},
    user_agent_appid="amiguard",  # type: ignore[call-arg]  # botocore >= 1.32; the stubs lag
)
# botocore's standard backoff: attempt n waits at most min(2 ** (n - 1), 20) seconds (throttling; less for 5xx).
MAX_BACKOFF = 20.0
# What is left for the function once a call gives up: log the outcome, give back an alert claim, raise.
RESERVE = timedelta(seconds=2)


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float

    @property
    def attempt(self) -> float:
        """The longest one attempt can take (a connection that hangs, then an answer that never comes)."""
        return self.connect + self.read


# service -> (connect, read) in seconds. Connecting within a region takes milliseconds; 2-3 s is a lost SYN
# retransmitted. Reads: DynamoDB and SNS answer in < 100 ms (5 s is 50x that); Secrets Manager likewise; EC2's
# DescribeImages/DescribeImageAttribute of a large account take seconds, CopyImage answers at once (15 s).
TIMEOUTS: dict[str, Timeouts] = {
    "ec2": Timeouts(connect=3, read=15),
    "dynamodb": Timeouts(connect=2, read=5),
    "sns": Timeouts(connect=2, read=5),
    "secretsmanager": Timeouts(connect=2, read=5),
    "sts": Timeouts(connect=2, read=5),
    "securityhub": Timeouts(connect=2, read=5),
}
# Fewer attempts than MAX_ATTEMPTS where a call comes after the alert and failing it loses no alert: a throttled
# Security Hub (10 TPS per account and region) is retried a few times, not for the rest of the invocation.
ATTEMPTS: dict[str, int] = {"securityhub": 3}
DEFAULT_TIMEOUTS = Timeouts(connect=5, read=20)


def timeouts_for(service: str) -> Timeouts:
    return TIMEOUTS.get(service, DEFAULT_TIMEOUTS)


class DeadlineNear(BotoCoreError):
    """Too little of the invocation is left to make (or retry) an AWS call: raised so Lambda retries the event."""

    fmt = "{operation}: {remaining:.1f} s left before the Lambda deadline, a call may take {needed:.1f} s"


def _now() -> datetime:
    return datetime.now(UTC)


class DeadlineBudget:
    """The hook on one client: no attempt starts that could outlive ``deadline()`` less :data:`RESERVE`."""

    def __init__(
        self,
        timeouts: Timeouts,
        deadline: Callable[[], datetime | None],
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._timeouts = timeouts
        self._deadline = deadline
        self._clock = clock

    def _remaining(self) -> float | None:
        deadline = self._deadline()
        if deadline is None:
            return None
        return (deadline - self._clock() - RESERVE).total_seconds()

    def before_call(self, model: Any, **_: Any) -> None:
        remaining = self._remaining()
        if remaining is not None and remaining < self._timeouts.attempt:
            raise DeadlineNear(operation=model.name, remaining=remaining, needed=self._timeouts.attempt)

    def needs_retry(self, attempts: int, **_: Any) -> bool | None:
        """False (no retry) when the worst case of another attempt ends past the deadline; else botocore decides."""
        remaining = self._remaining()
        if remaining is None:
            return None
        worst_backoff = min(2.0 ** (attempts - 1), MAX_BACKOFF)
        if remaining < worst_backoff + self._timeouts.attempt:
            return False  # non-None: botocore's own handler (after this one) cannot schedule the retry
        return None


def bound_by_deadline(
    client: Any, service: str, deadline: Callable[[], datetime | None], clock: Callable[[], datetime] = _now
) -> Any:
    """Register :class:`DeadlineBudget` on ``client`` (first on ``needs-retry``, so its veto wins)."""
    budget = DeadlineBudget(timeouts_for(service), deadline, clock)
    service_id = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"needs-retry.{service_id}", budget.needs_retry)
    client.meta.events.register_first(f"before-call.{service_id}", budget.before_call)
    return client


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
    """Makes boto3 clients on first use. Pass a ``boto3.Session`` to use other credentials (``--profile``).

    ``deadline`` (the functions pass :func:`amiguard.observability.invocation_deadline`) bounds every client's
    retries by the invocation's remaining time; ``config`` is merged over the per-service timeouts.
    """

    def __init__(
        self,
        session: boto3.Session | None = None,
        config: Config = RETRY_CONFIG,
        *,
        deadline: Callable[[], datetime | None] = lambda: None,
        prepare: Callable[[str, Any], Any] | None = None,
    ) -> None:
        self._session = session
        self._config = config
        self._deadline = deadline
        self._prepare = prepare  # (service, client) -> client: a hook of the caller's on each new client
        self._client = cache(self._make)

    def session(self) -> botocore.session.Session:
        """The botocore session this factory's clients come from (boto3's default one unless given)."""
        if self._session is not None:
            return self._session._session
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        return boto3.DEFAULT_SESSION._session  # type: ignore[union-attr]

    def with_session(self, session: boto3.Session, prepare: Callable[[str, Any], Any] | None = None) -> ClientFactory:
        """The same factory (configuration, deadline) over ``session``: another account's credentials."""
        return ClientFactory(session, self._config, deadline=self._deadline, prepare=prepare)

    def _make(self, service: str, region: str | None) -> Any:
        timeouts = timeouts_for(service)
        config = Config(connect_timeout=timeouts.connect, read_timeout=timeouts.read).merge(self._config)
        if service in ATTEMPTS:
            config = config.merge(Config(retries={"mode": "adaptive", "max_attempts": ATTEMPTS[service]}))
        maker = self._session.client if self._session is not None else boto3.client
        client = maker(service, region_name=region, config=config)  # type: ignore[call-overload]
        client = bound_by_deadline(client, service, self._deadline)
        if self._prepare is not None:
            client = self._prepare(service, client)
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

    def securityhub(self, region: str | None = None) -> SecurityHubClient:
        client: SecurityHubClient = self._client("securityhub", region)
        return client

    def secretsmanager(self, region: str | None = None) -> SecretsManagerClient:
        client: SecretsManagerClient = self._client("secretsmanager", region)
        return client
