"""Organization mode's clients: which credentials a function acts with, and how AssumeRole is asked (Stubber)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from amiguard.aws.accounts import AccountClients, AccountNames, MemberRoleUnavailable, acting_account, acting_in
from amiguard.aws.clients import ClientFactory

CENTRAL = "123456789012"
MEMBER = "444455556666"
OWN_ROLES = (f"arn:aws:iam::{CENTRAL}:role/amiguard/amiguard-PublicGuardRole-1A2B3C4D5E6F",)


@pytest.fixture
def factory() -> ClientFactory:
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    return ClientFactory(session)


def _credentials(expires_in: timedelta = timedelta(hours=1)) -> dict[str, object]:
    return {
        "Credentials": {
            "AccessKeyId": "ASIAEXAMPLEEXAMPLE01",
            "SecretAccessKey": "secret" * 5,
            "SessionToken": "token" * 20,
            "Expiration": datetime.now(UTC) + expires_in,
        }
    }


def test_function_acts_with_its_own_clients_when_not_in_organization_mode(factory: ClientFactory) -> None:
    accounts = AccountClients(factory, function="public_guard", organization=False, own_role_arns=OWN_ROLES)
    with acting_in(MEMBER):
        assert accounts.current() is factory


def test_assume_role_names_the_contract_role_session_and_source_identity_when_acting_in_a_member(
    factory: ClientFactory,
) -> None:
    accounts = AccountClients(
        factory, function="public_guard", organization=True, own_role_arns=OWN_ROLES, region="us-east-1"
    )
    with Stubber(factory.client("sts", "us-east-1")) as sts:
        sts.add_response(
            "assume_role",
            _credentials(),
            {
                "RoleArn": f"arn:aws:iam::{MEMBER}:role/amiguard/amiguard-public-guard",
                "RoleSessionName": "amiguard-public_guard",
                "SourceIdentity": "amiguard",
                "DurationSeconds": 3600,
            },
        )
        with acting_in(MEMBER):
            member = accounts.current()
        credentials = member.session().get_credentials()
        assert credentials is not None
        assert credentials.get_frozen_credentials().access_key == "ASIAEXAMPLEEXAMPLE01"
        # cached: the same account's clients and credentials, no second AssumeRole (the stubber has none left)
        assert accounts.for_account(MEMBER) is member
        assert member.session().get_credentials().get_frozen_credentials().token == "token" * 20
        sts.assert_no_pending_responses()


def test_refusal_is_member_role_unavailable_when_sts_says_access_denied(factory: ClientFactory) -> None:
    accounts = AccountClients(
        factory, function="sweeper", organization=True, own_role_arns=OWN_ROLES, region="us-east-1"
    )
    with Stubber(factory.client("sts", "us-east-1")) as sts:
        sts.add_client_error("assume_role", "AccessDenied", "not authorized to perform: sts:AssumeRole", 403)
        credentials = accounts.for_account(MEMBER).session().get_credentials()
        assert credentials is not None
        with pytest.raises(MemberRoleUnavailable) as raised:
            credentials.get_frozen_credentials()
    assert (raised.value.account, raised.value.cause, raised.value.code) == (
        MEMBER,
        "role-missing-or-refused",
        "AccessDenied",
    )
    assert raised.value.role_arn == f"arn:aws:iam::{MEMBER}:role/amiguard/amiguard-sweeper"


def test_acting_account_is_unset_when_the_event_account_is_not_an_account_id() -> None:
    for bad in (None, "", "12345", "arn:aws:iam::123456789012:root", 123456789012):
        with acting_in(bad):
            assert acting_account() is None
    with acting_in(MEMBER):
        assert acting_account() == MEMBER
    assert acting_account() is None


def test_account_name_is_asked_once_and_a_refusal_remembered_when_named_twice() -> None:
    organizations = boto3.client(
        "organizations", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    names = AccountNames(lambda: organizations)
    with Stubber(organizations) as stub:
        stub.add_response("describe_account", {"Account": {"Id": MEMBER, "Name": "prod"}}, {"AccountId": MEMBER})
        stub.add_client_error("describe_account", "AccessDeniedException", "not delegated", 400)
        assert names(MEMBER) == "prod"
        assert names(MEMBER) == "prod"
        assert names(CENTRAL) is None
        assert names(CENTRAL) is None
        stub.assert_no_pending_responses()


def test_role_is_assumed_again_when_less_than_three_minutes_are_left(factory: ClientFactory) -> None:
    # Given credentials that expire in two minutes
    accounts = AccountClients(factory, function="sweeper", organization=True, own_role_arns=OWN_ROLES)
    with Stubber(factory.client("sts", "us-east-1")) as sts:
        sts.add_response("assume_role", _credentials(timedelta(minutes=2)))
        sts.add_response("assume_role", _credentials(timedelta(hours=1)))
        credentials = accounts.session(MEMBER).get_credentials()
        assert credentials is not None
        credentials.get_frozen_credentials()  # the first call signed: the role is assumed
        # When the next call signs
        credentials.get_frozen_credentials()
        # Then botocore assumed the role again, before they ran out
        sts.assert_no_pending_responses()
    assert accounts.assumed == {MEMBER: 2}


def test_role_is_not_assumed_again_when_more_than_three_minutes_are_left(factory: ClientFactory) -> None:
    # Given credentials that expire in five minutes (botocore's default window would renew them)
    accounts = AccountClients(factory, function="sweeper", organization=True, own_role_arns=OWN_ROLES)
    with Stubber(factory.client("sts", "us-east-1")) as sts:
        sts.add_response("assume_role", _credentials(timedelta(minutes=5)))
        credentials = accounts.session(MEMBER).get_credentials()
        assert credentials is not None
        # When
        credentials.get_frozen_credentials()
        credentials.get_frozen_credentials()
        # Then
        sts.assert_no_pending_responses()
    assert accounts.assumed == {MEMBER: 1}


def test_reader_role_and_session_are_the_cli_s_when_named(factory: ClientFactory) -> None:
    accounts = AccountClients(
        factory, function="scan", organization=True, role_name="amiguard-reader", partition="aws-us-gov"
    )
    with Stubber(factory.client("sts", "us-east-1")) as sts:
        sts.add_response(
            "assume_role",
            _credentials(),
            {
                "RoleArn": f"arn:aws-us-gov:iam::{MEMBER}:role/amiguard/amiguard-reader",
                "RoleSessionName": "amiguard-scan",
                "SourceIdentity": "amiguard",
                "DurationSeconds": 3600,
            },
        )
        credentials = accounts.session(MEMBER).get_credentials()
        assert credentials is not None
        credentials.get_frozen_credentials()
        sts.assert_no_pending_responses()
