"""Acting in an event's account: organization mode's member roles, one set of clients per account.

In organization mode (``OrganizationId``) a central function acts in every account, the central one included,
through that account's member role ``arn:<partition>:iam::<account>:role/amiguard/amiguard-<function, dashes>``
(session ``amiguard-<function>``, SourceIdentity ``amiguard``, which CloudTrail then records on each of its
calls: :mod:`amiguard.policy.identity` knows them by it). Outside organization mode every call is the
function's own. Membership is not looked up: the central bus admits only the organization, and a member role
exists only where the organization's StackSet deployed it.

The account is the invocation's, like its deadline: :func:`acting_in` sets it from the event (in
:func:`amiguard.observability.handle_event`); the composition roots ask :meth:`AccountClients.current` for
EC2 clients, so services and their region-to-port factories are the same in both modes.

Credentials: botocore's own :class:`~botocore.credentials.DeferredRefreshableCredentials`, one per account for
the life of the execution environment. The first call in an account assumes its role; botocore refreshes a
credential before it expires, under its lock, at the signing of a call. Sessions last 3600 s, the most role
chaining allows (a Lambda role's session assuming another role). botocore's default windows (refresh with 15
min left, block with 10) would assume every 45 min; a signed request is valid when it is signed, so the windows
here are 3 and 1 min: one AssumeRole per account per 57 min of use. AssumeRole is made in the function's own
region (the regional STS endpoint: its tokens are valid in every region, opt-in ones included), by a client of
:class:`~amiguard.aws.clients.ClientFactory`: throttling is retried by botocore within the invocation's
deadline.

A role that cannot be assumed (missing, refused by its trust policy, in a suspended account or one outside
the organization: STS answers AccessDenied for all of them), or a region the member has not enabled (EC2
answers AuthFailure), raises :class:`MemberRoleUnavailable`: a ``member-role-unavailable`` finding, and an
error for Lambda to retry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from amiguard.aws.clients import ClientFactory
from amiguard.aws.errors import error_code
from amiguard.models.settings import ACCOUNT_ID, Settings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

ROLE_PATH = "/amiguard/"
SOURCE_IDENTITY = "amiguard"
SESSION_SECONDS = 3600  # role chaining's maximum
ADVISORY_REFRESH_SECONDS = 180  # refresh if another thread is not already doing it
MANDATORY_REFRESH_SECONDS = 60  # every thread waits for the refresh
# STS's answers for a role it will not let us assume, and EC2's for a region the account has not enabled.
THROTTLED = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"})
REGION_NOT_ENABLED = frozenset({"AuthFailure", "OptInRequired", "RegionDisabledException"})

_acting: ContextVar[str | None] = ContextVar("amiguard_acting_account", default=None)


def member_role_name(function: str) -> str:
    """``public_guard`` -> ``amiguard-public-guard``."""
    return "amiguard-" + function.replace("_", "-")


def member_role_arn(partition: str, account: str, function: str) -> str:
    return f"arn:{partition}:iam::{account}:role{ROLE_PATH}{member_role_name(function)}"


def acting_account() -> str | None:
    """The account the invocation acts in (the event's), None outside :func:`acting_in`."""
    return _acting.get()


@contextmanager
def acting_in(account: object) -> Iterator[None]:
    """Act in ``account`` (an event's ``account``; anything but a 12-digit id leaves it unset) until exit."""
    token = _acting.set(account if isinstance(account, str) and ACCOUNT_ID.match(account) else None)
    try:
        yield
    finally:
        _acting.reset(token)


class MemberRoleUnavailable(Exception):
    """The member role of ``account`` could not be used; ``cause`` says why (a metric dimension)."""

    def __init__(self, *, account: str, role_arn: str, region: str, cause: str, code: str, message: str) -> None:
        super().__init__(f"{role_arn}: {cause} ({code}): {message}")
        self.account = account
        self.role_arn = role_arn
        self.region = region
        self.cause = cause
        self.code = code


def unavailable_cause(code: str) -> str:
    """What an AWS error code says about a member role that could not be used."""
    if code in THROTTLED:
        return "sts-throttled"
    if code in REGION_NOT_ENABLED:
        return "region-not-enabled"
    return "role-missing-or-refused"  # STS says AccessDenied for a missing role, a refusing trust, a closed account


def _now() -> datetime:
    return datetime.now(UTC)


class _RefreshableMemberCredentials(DeferredRefreshableCredentials):
    """botocore's deferred refreshable credentials with the refresh windows RefreshableCredentials takes as
    ``advisory_timeout`` / ``mandatory_timeout`` (its Deferred subclass does not pass them through)."""

    def __init__(self, refresh_using: Callable[[], dict[str, Any]], method: str, time_fetcher: Any) -> None:
        super().__init__(refresh_using=refresh_using, method=method, time_fetcher=time_fetcher)
        self._advisory_refresh_timeout = ADVISORY_REFRESH_SECONDS
        self._mandatory_refresh_timeout = MANDATORY_REFRESH_SECONDS


class _Provider(CredentialProvider):
    METHOD = "amiguard-member-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


class AccountClients:
    """Clients per account: the function's own, or (organization mode) through each account's member role.

    ``central`` makes the function's own clients (and its STS client); ``own_role_arns`` tell its account and
    partition. ``role_name`` is the member role (default ``amiguard-<function>``; the CLI reads through
    ``amiguard-reader``), ``session_name`` its session (default ``amiguard-<function>``). ``clock`` is
    botocore's time fetcher for the credentials' expiry. ``assumed`` counts the AssumeRole calls per account.
    """

    def __init__(
        self,
        central: ClientFactory,
        *,
        function: str,
        organization: bool,
        own_role_arns: tuple[str, ...] = (),
        region: str | None = None,
        clock: Callable[[], datetime] = _now,
        role_name: str | None = None,
        session_name: str | None = None,
        partition: str | None = None,
    ) -> None:
        self.central = central
        self.organization = organization
        arn = own_role_arns[0].split(":") if own_role_arns else ["arn", "aws", "iam", "", ""]
        self._account, self._partition, self._region = arn[4], partition or arn[1], region
        self.role_name = role_name or member_role_name(function)
        self._session_name = session_name or f"amiguard-{function}"
        self._clock = clock
        self._sessions = cache(self._member_session)
        self._for_account = cache(self._member_clients)
        self._lock = threading.Lock()  # the sweeper's threads: one set of credentials per account, not one each
        self._names: AccountNames | None = None
        self.assumed: dict[str, int] = {}
        self._count_lock = threading.Lock()

    @classmethod
    def for_function(cls, central: ClientFactory, settings: Settings, function: str) -> AccountClients:
        """What a function's composition root acts through: member roles when ``OrganizationId`` is set."""
        return cls(central, function=function, organization=settings.organization, own_role_arns=settings.own_role_arns)

    @property
    def own_account(self) -> str:
        """The function's own account (its roles')."""
        return self._account

    @property
    def region(self) -> str:
        """The function's region: AssumeRole is made there (read when first needed, not at start-up)."""
        if self._region is None:
            self._region = str(self.central.session().get_config_variable("region") or "us-east-1")
        return self._region

    def role_arn(self, account: str) -> str:
        return f"arn:{self._partition}:iam::{account}:role{ROLE_PATH}{self.role_name}"

    def current(self) -> ClientFactory:
        """The clients of the account the invocation acts in (the function's own outside organization mode)."""
        if not self.organization:
            return self.central
        return self.for_account(acting_account() or self._account)

    def ec2(self, region: str) -> EC2Client:
        return self.current().ec2(region)

    def for_account(self, account: str) -> ClientFactory:
        """``account``'s clients through its member role, made once per execution environment."""
        with self._lock:
            return self._for_account(account)

    def clients_of(self, account: str) -> ClientFactory:
        """The clients acting in ``account`` (a finding's: Security Hub imports it there), the function's own
        outside organization mode."""
        return self.for_account(account) if self.organization else self.central

    def session(self, account: str) -> boto3.Session:
        """``account``'s boto3 session through its member role (nothing assumed until a call is signed)."""
        with self._lock:
            return self._sessions(account)

    def name_of(self, account: str) -> str | None:
        """The account's name in the organization (organization mode; None otherwise or when unknown)."""
        if not self.organization:
            return None
        if self._names is None:
            self._names = AccountNames(lambda: self.central.client("organizations"))
        return self._names(account)

    def _member_session(self, account: str) -> boto3.Session:
        credentials = _RefreshableMemberCredentials(
            refresh_using=lambda: self._assume(account), method=_Provider.METHOD, time_fetcher=self._clock
        )
        return _session_with(self.central.session(), credentials)

    def _member_clients(self, account: str) -> ClientFactory:
        return self.central.with_session(
            self._sessions(account),
            prepare=lambda service, client: (
                _refuse_disabled_region(client, account, self.role_arn(account)) if service == "ec2" else client
            ),
        )

    def _assume(self, account: str) -> dict[str, Any]:
        """AssumeRole into ``account``'s member role: botocore's refresh callback (its metadata shape)."""
        role_arn = self.role_arn(account)
        try:
            response = self.central.client("sts", self.region).assume_role(
                RoleArn=role_arn,
                RoleSessionName=self._session_name,
                SourceIdentity=SOURCE_IDENTITY,
                DurationSeconds=SESSION_SECONDS,
            )
        except ClientError as error:
            code = error_code(error)
            raise MemberRoleUnavailable(
                account=account,
                role_arn=role_arn,
                region=self.region,
                cause=unavailable_cause(code),
                code=code,
                message=str(error.response.get("Error", {}).get("Message", "")),
            ) from error
        with self._count_lock:  # botocore refreshes under its own lock, one per account's credentials
            self.assumed[account] = self.assumed.get(account, 0) + 1
        credentials = response["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }


class AccountNames:
    """Each account's name in the organization, from Organizations ``DescribeAccount`` (the function's own role,
    delegated administrator), asked once per account per execution environment.

    Names are for people reading alerts; membership is never decided here. A refusal (no delegation for
    DescribeAccount) is remembered as no name; a transient failure is asked again at the next finding.
    """

    def __init__(self, organizations: Callable[[], Any]) -> None:
        self._organizations = organizations
        self._names: dict[str, str | None] = {}

    def __call__(self, account: str) -> str | None:
        if account not in self._names:
            try:
                described = self._organizations().describe_account(AccountId=account)["Account"]
            except ClientError:
                self._names[account] = None
            except BotoCoreError:
                return None
            else:
                self._names[account] = str(described.get("Name") or "") or None
        return self._names[account]


def _session_with(base: botocore.session.Session, credentials: DeferredRefreshableCredentials) -> boto3.Session:
    """A session like ``base`` (its botocore data path, region, event handlers) with other credentials."""
    session = botocore.session.Session(
        event_hooks=base.get_component("event_emitter"),  # base's handlers, builtin ones included
        include_builtin_handlers=False,
    )
    for variable in ("data_path", "region"):
        value = base.get_config_variable(variable)
        if value:
            session.set_config_variable(variable, value)
    session.register_component("credential_provider", CredentialResolver([_Provider(credentials)]))
    return boto3.Session(botocore_session=session)


# EC2's answer to valid credentials in a region the account has not enabled (an opt-in region). The same code,
# AuthFailure, with another message, is EC2's answer about an AMI of another account: that one is "not ours".
_CREDENTIALS_NOT_VALID_HERE = "not able to validate the provided access credentials"


def _refuse_disabled_region(client: Any, account: str, role_arn: str) -> Any:
    """Make ``client`` (EC2, in a member) raise :class:`MemberRoleUnavailable` where its region is not enabled."""
    region = client.meta.region_name

    def check(parsed: dict[str, Any], **_: Any) -> None:
        error = parsed.get("Error") or {}
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if code == "OptInRequired" or (code == "AuthFailure" and _CREDENTIALS_NOT_VALID_HERE in message):
            raise MemberRoleUnavailable(
                account=account,
                role_arn=role_arn,
                region=region,
                cause="region-not-enabled",
                code=code,
                message=message,
            )

    client.meta.events.register("after-call.ec2.*", check)
    return client
