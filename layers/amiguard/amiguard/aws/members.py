"""Sessions in member accounts through their amiguard roles, one per account, refreshed by botocore.

Organization mode acts in a member through ``arn:<partition>:iam::<account>:role/amiguard/<role>`` with the
session name ``amiguard-<purpose>`` and the ``SourceIdentity`` ``amiguard`` (the member roles' trust requires
it, and it marks amiguard's own calls in the member's CloudTrail). Each account's credentials are botocore
``RefreshableCredentials``: every client made from the account's session shares them, and botocore assumes the
role again only when less than 15 minutes are left. Sessions are asked for :data:`SESSION_SECONDS` (2 h), so a
warm function re-assumes a member role at most every 105 minutes (under one AssumeRole per account per hour);
a role whose ``MaxSessionDuration`` is shorter is asked again for the 1-hour sessions every role allows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError

from amiguard.aws.errors import error_code

ROLE_PATH = "/amiguard/"
SOURCE_IDENTITY = "amiguard"
SESSION_SECONDS = 7200
# Every IAM role allows one hour; a longer session needs the role's MaxSessionDuration to allow it.
FALLBACK_SESSION_SECONDS = 3600


def member_role_arn(partition: str, account: str, role_name: str) -> str:
    return f"arn:{partition}:iam::{account}:role{ROLE_PATH}{role_name}"


class MemberSessions:
    """``session(account)``: a boto3 session in ``account`` through ``role/amiguard/<role_name>``, cached.

    ``sts`` is the STS client of the caller's own credentials (the central role). ``assumed`` counts the
    AssumeRole calls made per account (what the organization benchmark reports).
    """

    def __init__(
        self,
        sts: Any,
        role_name: str,
        *,
        purpose: str,
        partition: str = "aws",
        region: str | None = None,
        seconds: int = SESSION_SECONDS,
    ) -> None:
        self._sts = sts
        self.role_name = role_name
        self._session_name = f"amiguard-{purpose}"
        self._partition = partition
        self._region = region
        self._seconds = seconds
        self._sessions: dict[str, boto3.Session] = {}
        self._lock = threading.Lock()
        self._account_locks: dict[str, threading.Lock] = {}
        self._data_loader: Any = None
        self.assumed: dict[str, int] = {}

    def role_arn(self, account: str) -> str:
        return member_role_arn(self._partition, account, self.role_name)

    def session(self, account: str) -> boto3.Session:
        """The account's session; the first call assumes the role (and raises ``ClientError`` if it refuses)."""
        with self._lock:
            account_lock = self._account_locks.setdefault(account, threading.Lock())
        with account_lock:  # one AssumeRole per account, however many threads ask at once
            cached = self._sessions.get(account)
            if cached is not None:
                return cached
            refresh = self._refresher(account)
            credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "assume-role")
            core = botocore.session.Session()
            core.register_component("data_loader", self._loader())  # service models parsed once, not per account
            core._credentials = credentials  # type: ignore[attr-defined]  # as botocore's providers hand it
            session = boto3.Session(botocore_session=core, region_name=self._region)
            self._sessions[account] = session
            return session

    def _loader(self) -> Any:
        with self._lock:
            if self._data_loader is None:
                self._data_loader = botocore.session.Session().get_component("data_loader")
            return self._data_loader

    def _refresher(self, account: str) -> Callable[[], dict[str, str]]:
        role_arn = self.role_arn(account)

        def assume() -> dict[str, str]:
            try:
                answer = self._assume(role_arn, self._seconds)
            except ClientError as error:
                if self._seconds <= FALLBACK_SESSION_SECONDS or error_code(error) != "ValidationError":
                    raise
                answer = self._assume(role_arn, FALLBACK_SESSION_SECONDS)  # the role's MaxSessionDuration is 1 h
            with self._lock:
                self.assumed[account] = self.assumed.get(account, 0) + 1
            credentials = answer["Credentials"]
            expiry = credentials["Expiration"]
            return {
                "access_key": credentials["AccessKeyId"],
                "secret_key": credentials["SecretAccessKey"],
                "token": credentials["SessionToken"],
                "expiry_time": expiry.isoformat() if isinstance(expiry, datetime) else str(expiry),
            }

        return assume

    def _assume(self, role_arn: str, seconds: int) -> Any:
        return self._sts.assume_role(
            RoleArn=role_arn,
            RoleSessionName=self._session_name,
            SourceIdentity=SOURCE_IDENTITY,
            DurationSeconds=seconds,
        )
