"""The principal amiguard writes as ``amiguard:created-by``, for each userIdentity shape CloudTrail records."""

from __future__ import annotations

import pytest

from amiguard.models.events import UserIdentity
from tests.samples import load_sample

ACCOUNT = "123456789012"


def assumed(issuer: str, session: str, **extra: object) -> dict[str, object]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{issuer.rsplit('/', 1)[-1]}/{session}",
        "accountId": ACCOUNT,
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": issuer, "accountId": ACCOUNT}} | extra,
    }


@pytest.mark.parametrize(
    ("identity", "principal"),
    [
        (
            {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/dev-bob", "userName": "dev-bob"},
            f"arn:aws:iam::{ACCOUNT}:user/dev-bob",
        ),
        (
            assumed(
                f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Dev_0123456789abcdef",
                "alice@example.com",
            ),
            f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Dev_0123456789abcdef"
            "/alice@example.com",
        ),
        (
            assumed(
                f"arn:aws:iam::{ACCOUNT}:role/GitHubActions",
                "deploy-run-42",
                webIdFederationData={"federatedProvider": "arn:aws:iam::123456789012:oidc-provider/token.actions"},
            ),
            f"arn:aws:iam::{ACCOUNT}:role/GitHubActions/deploy-run-42",
        ),
        (
            {
                "type": "FederatedUser",
                "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
                "principalId": f"{ACCOUNT}:carol",
                "sessionContext": {"sessionIssuer": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/broker"}},
            },
            f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
        ),
        ({"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root"}, f"arn:aws:iam::{ACCOUNT}:root"),
        ({"type": "AWSService", "invokedBy": "backup.amazonaws.com"}, "backup.amazonaws.com"),
    ],
    ids=["iam-user", "identity-center", "web-identity", "federated-user", "root", "aws-service"],
)
def test_principal_is_who_made_the_call_when_recorded_in_each_identity_shape(identity, principal):
    assert UserIdentity.model_validate(identity).principal == principal


def test_principal_is_role_and_session_when_the_panther_create_image_sample_is_read():
    identity = load_sample("cloudtrail-raw-createimage-console-panther.json")["detail"]["userIdentity"]

    assert (
        UserIdentity.model_validate(identity).principal == "arn:aws:iam::123456789101:role/DevAdministrator/test_user"
    )
