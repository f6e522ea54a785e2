"""Member sessions: one AssumeRole per account while the credentials last, refreshed by botocore near expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from amiguard.aws.members import FALLBACK_SESSION_SECONDS, SESSION_SECONDS, MemberSessions

ACCOUNT = "111122223333"


def _credentials(expires_in: timedelta) -> dict[str, object]:
    return {
        "Credentials": {
            "AccessKeyId": "ASIAEXAMPLEEXAMPLE",
            "SecretAccessKey": "secretsecretsecretsecretsecretsecretsecr",
            "SessionToken": "token",
            "Expiration": datetime.now(UTC) + expires_in,
        }
    }


def _expected(seconds: int) -> dict[str, object]:
    return {
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard-sweeper",
        "RoleSessionName": "amiguard-sweeper",
        "SourceIdentity": "amiguard",
        "DurationSeconds": seconds,
    }


@pytest.fixture
def sts() -> boto3.client:
    return boto3.client("sts", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_role_is_assumed_once_per_account_when_its_session_is_asked_for_again(sts: boto3.client) -> None:
    # Given
    sessions = MemberSessions(sts, "amiguard-sweeper", purpose="sweeper")
    with Stubber(sts) as stub:
        stub.add_response("assume_role", _credentials(timedelta(hours=2)), _expected(SESSION_SECONDS))
        # When
        first = sessions.session(ACCOUNT)
        again = sessions.session(ACCOUNT)
        first.get_credentials().get_frozen_credentials()
        # Then
        stub.assert_no_pending_responses()
    assert first is again and sessions.assumed == {ACCOUNT: 1}


def test_credentials_are_renewed_when_less_than_15_minutes_are_left(sts: boto3.client) -> None:
    # Given credentials that expire in 10 minutes
    sessions = MemberSessions(sts, "amiguard-sweeper", purpose="sweeper")
    with Stubber(sts) as stub:
        stub.add_response("assume_role", _credentials(timedelta(minutes=10)), _expected(SESSION_SECONDS))
        stub.add_response("assume_role", _credentials(timedelta(hours=2)), _expected(SESSION_SECONDS))
        session = sessions.session(ACCOUNT)
        # When a client signs with them
        session.get_credentials().get_frozen_credentials()
        # Then botocore assumed the role again
        stub.assert_no_pending_responses()
    assert sessions.assumed == {ACCOUNT: 2}


def test_one_hour_sessions_are_asked_for_when_the_role_allows_no_longer(sts: boto3.client) -> None:
    # Given a role whose MaxSessionDuration is one hour
    sessions = MemberSessions(sts, "amiguard-sweeper", purpose="sweeper")
    with Stubber(sts) as stub:
        stub.add_client_error(
            "assume_role", "ValidationError", "DurationSeconds exceeds the MaxSessionDuration", 400, _expected(7200)
        )
        stub.add_response("assume_role", _credentials(timedelta(hours=1)), _expected(FALLBACK_SESSION_SECONDS))
        # When
        sessions.session(ACCOUNT)
        # Then
        stub.assert_no_pending_responses()


def test_refusal_is_raised_and_nothing_cached_when_the_role_is_missing(sts: boto3.client) -> None:
    # Given
    sessions = MemberSessions(sts, "amiguard-sweeper", purpose="sweeper")
    with Stubber(sts) as stub:
        stub.add_client_error("assume_role", "AccessDenied", "not authorized", 403, _expected(SESSION_SECONDS))
        # When / Then
        with pytest.raises(ClientError, match="AccessDenied"):
            sessions.session(ACCOUNT)
    assert sessions.assumed == {}
