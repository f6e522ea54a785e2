"""Sharing policy: which Modify*Attribute calls can widen access, and what is public or untrusted."""

import pytest

from amiguard.policy.sharing import (
    ChangeKind,
    Grant,
    GrantKind,
    assess_grants,
    grants_from_api,
    is_trusted,
    read_permission_change,
)

OWN = "111111111111"
ORG = "arn:aws:organizations::999999999999:organization/o-abcdefghij"
OU_IN_ORG = "arn:aws:organizations::999999999999:ou/o-abcdefghij/ou-ab12-cdefgh34"
OU_ELSEWHERE = "arn:aws:organizations::888888888888:ou/o-zzzzzzzzzz/ou-zz12-zzzzzz34"


@pytest.mark.parametrize(
    ("params", "attribute", "kind", "added"),
    [
        (
            {
                "imageId": "ami-1",
                "attributeType": "launchPermission",
                "launchPermission": {"add": {"items": [{"group": "all"}]}},
            },
            "launchPermission",
            ChangeKind.ADDS,
            [Grant(GrantKind.GROUP, "all")],
        ),
        (
            {"launchPermission": {"add": {"items": [{"userId": "222222222222"}, {"organizationArn": ORG}]}}},
            "launchPermission",
            ChangeKind.ADDS,
            [Grant(GrantKind.USER_ID, "222222222222"), Grant(GrantKind.ORGANIZATION, ORG)],
        ),
        (
            {"launchPermission": {"remove": {"items": [{"group": "all"}]}}},
            "launchPermission",
            ChangeKind.REMOVES_ONLY,
            [],
        ),
        (
            {"attributeType": "description", "description": {"value": "x"}},
            "launchPermission",
            ChangeKind.OTHER_ATTRIBUTE,
            [],
        ),
        ({"imdsSupport": {"value": "v2.0"}}, "launchPermission", ChangeKind.OTHER_ATTRIBUTE, []),
        # the legacy form, recorded without attributeType
        (
            {"operationType": "add", "userGroup": "all"},
            "launchPermission",
            ChangeKind.ADDS,
            [Grant(GrantKind.GROUP, "all")],
        ),
        ({"operationType": "remove", "userId": "222222222222"}, "launchPermission", ChangeKind.REMOVES_ONLY, []),
        ({"imageId": "ami-1"}, "launchPermission", ChangeKind.UNKNOWN, []),
        (
            {
                "attributeType": "CREATE_VOLUME_PERMISSION",
                "createVolumePermission": {"add": {"items": [{"group": "all"}]}},
            },
            "createVolumePermission",
            ChangeKind.ADDS,
            [Grant(GrantKind.GROUP, "all")],
        ),
        ({"attributeType": "PRODUCT_CODES"}, "createVolumePermission", ChangeKind.OTHER_ATTRIBUTE, []),
    ],
)
def test_permission_change_is_classified_when_request_has_this_shape(params, attribute, kind, added):
    change = read_permission_change(params, attribute=attribute)
    assert change.kind is kind
    assert sorted(change.added) == sorted(added)


@pytest.mark.parametrize(
    ("grant", "trusted", "expected"),
    [
        (Grant(GrantKind.USER_ID, OWN), [], True),
        (Grant(GrantKind.USER_ID, "222222222222"), [], False),
        (Grant(GrantKind.USER_ID, "222222222222"), ["222222222222"], True),
        (Grant(GrantKind.ORGANIZATION, ORG), [ORG], True),
        (Grant(GrantKind.ORGANIZATIONAL_UNIT, OU_IN_ORG), [ORG], True),
        (Grant(GrantKind.ORGANIZATIONAL_UNIT, OU_ELSEWHERE), [ORG], False),
        (Grant(GrantKind.ORGANIZATIONAL_UNIT, OU_IN_ORG), [OU_IN_ORG], True),
        (Grant(GrantKind.GROUP, "all"), ["all"], False),
    ],
)
def test_principal_is_trusted_when_own_listed_or_inside_listed_organization(grant, trusted, expected):
    assert is_trusted(grant, own_account=OWN, trusted_principals=trusted) is expected


def test_public_and_untrusted_are_revoked_and_trusted_kept_when_grants_are_mixed():
    grants = grants_from_api(
        [{"Group": "all"}, {"UserId": "222222222222"}, {"UserId": "333333333333"}, {"OrganizationArn": ORG}]
    )
    exposure = assess_grants(grants, own_account=OWN, trusted_principals=["333333333333", ORG])
    assert exposure.public == Grant(GrantKind.GROUP, "all")
    assert exposure.untrusted == (Grant(GrantKind.USER_ID, "222222222222"),)
    assert set(exposure.kept) == {Grant(GrantKind.USER_ID, "333333333333"), Grant(GrantKind.ORGANIZATION, ORG)}


def test_public_grant_is_kept_when_image_is_allow_listed():
    exposure = assess_grants(
        [Grant(GrantKind.GROUP, "all")], own_account=OWN, trusted_principals=[], public_allowed=True
    )
    assert not exposure.exposed
