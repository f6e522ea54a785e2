"""The scan's checks: which facts they ask for, and the problems and remedies they return."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from amiguard.models.findings import FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.settings import load_settings
from amiguard.policy.checks import (
    BlockNewPublicSharing,
    BlockNewPublicSnapshotSharing,
    BlockPublicAccessCheck,
    CheckContext,
    Fact,
    ImageFacts,
    LaunchPermissionCheck,
    PublicSnapshotCheck,
    RegionFacts,
    RevokeCreateVolumePermissions,
    RevokeLaunchPermissions,
    SnapshotBlockPublicAccessCheck,
    SnapshotShareCheck,
)
from amiguard.policy.sharing import BlockPublicAccess, Grant, GrantKind
from amiguard.services.scan import RegionResult, ScanError, ScanReport

OWN = "123456789012"
TRUSTED = "111122223333"
STRANGER = "999988887777"
PUBLIC = Grant(GrantKind.GROUP, "all")
ALLOWED_PUBLIC = "ami-0aaaaaaaaaaaaaaaa"


def context(*, fix: bool = False) -> CheckContext:
    settings = load_settings(trusted_principals=TRUSTED, public_allowlist=ALLOWED_PUBLIC)
    return CheckContext(settings=settings, account=OWN, fix=fix)


def image(image_id: str = "ami-0123456789abcdef0", *, public: bool = False, state: str = "available", **kw: object):
    return Image(image_id=image_id, region="us-east-1", owner_id=OWN, public=public, state=state, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("the_image", "fix", "needed"),
    [
        (image(), False, True),  # private: only the attribute can tell who it is shared with
        (image(public=True), False, False),  # public: DescribeImages said so already
        (image(public=True), True, True),  # about to revoke: read every grant so all go at once
        (image(ALLOWED_PUBLIC, public=True), False, True),  # allowed public, but maybe shared with strangers
        (image(state="disabled"), False, False),  # EC2 makes a disabled AMI private
    ],
    ids=["private", "public-read-only", "public-fix", "public-allow-listed", "disabled"],
)
def test_launch_permissions_are_read_only_when_they_can_change_the_verdict_when_image_varies(
    the_image: Image, fix: bool, needed: bool
) -> None:
    # Given / When
    answer = LaunchPermissionCheck().needs_launch_permissions(the_image, context(fix=fix))
    # Then
    assert answer is needed


def test_public_image_is_critical_public_share_when_its_permissions_were_not_read() -> None:
    # Given a public AMI whose launch permissions were not read
    facts = ImageFacts(image(public=True), launch_permissions=None)
    # When
    problems = LaunchPermissionCheck().evaluate_image(facts, context())
    # Then
    assert [(p.verdict.type, p.verdict.severity) for p in problems] == [(FindingType.PUBLIC_SHARE, Severity.CRITICAL)]
    assert problems[0].remedy == RevokeLaunchPermissions("ami-0123456789abcdef0", (PUBLIC,))


def test_untrusted_share_is_high_and_trusted_grants_stay_when_both_are_present() -> None:
    # Given
    grants = (Grant(GrantKind.USER_ID, TRUSTED), Grant(GrantKind.USER_ID, STRANGER))
    facts = ImageFacts(image(), launch_permissions=grants)
    # When
    problems = LaunchPermissionCheck().evaluate_image(facts, context())
    # Then
    assert [(p.verdict.type, p.verdict.severity) for p in problems] == [(FindingType.UNTRUSTED_SHARE, Severity.HIGH)]
    assert problems[0].verdict.evidence["untrusted_principals"] == [STRANGER]
    assert problems[0].remedy == RevokeLaunchPermissions("ami-0123456789abcdef0", (Grant(GrantKind.USER_ID, STRANGER),))


@pytest.mark.parametrize(
    "grants",
    [(), (Grant(GrantKind.USER_ID, TRUSTED),), (Grant(GrantKind.USER_ID, OWN),)],
    ids=["unshared", "trusted", "own-account"],
)
def test_no_problem_when_shared_only_with_trusted_principals(grants: tuple[Grant, ...]) -> None:
    # Given / When
    problems = LaunchPermissionCheck().evaluate_image(ImageFacts(image(), grants), context())
    # Then
    assert problems == []


def test_public_and_untrusted_share_one_remedy_when_both_grants_were_read() -> None:
    # Given a public AMI also shared with a stranger (read because the scan fixes)
    facts = ImageFacts(image(public=True), (PUBLIC, Grant(GrantKind.USER_ID, STRANGER)))
    # When
    problems = LaunchPermissionCheck().evaluate_image(facts, context(fix=True))
    # Then: two findings, one ModifyImageAttribute removing both grants
    assert [p.verdict.type for p in problems] == [FindingType.PUBLIC_SHARE, FindingType.UNTRUSTED_SHARE]
    assert problems[0].remedy is problems[1].remedy
    assert problems[0].remedy == RevokeLaunchPermissions(
        "ami-0123456789abcdef0", (PUBLIC, Grant(GrantKind.USER_ID, STRANGER))
    )


def test_allow_listed_public_image_raises_only_its_untrusted_share_when_shared_with_a_stranger() -> None:
    # Given
    facts = ImageFacts(image(ALLOWED_PUBLIC, public=True), (PUBLIC, Grant(GrantKind.USER_ID, STRANGER)))
    # When
    problems = LaunchPermissionCheck().evaluate_image(facts, context())
    # Then
    assert [p.verdict.type for p in problems] == [FindingType.UNTRUSTED_SHARE]


def test_snapshot_facts_are_asked_for_when_no_image_has_snapshots() -> None:
    # a snapshot that backs no AMI can be public or shared as well
    assert PublicSnapshotCheck().needs([image()], context()) == {Fact.PUBLIC_SNAPSHOTS}
    assert SnapshotShareCheck().needs([], context()) == {Fact.SNAPSHOT_SHARES}


def test_public_snapshot_backing_two_images_is_one_finding_naming_both_when_shared_publicly() -> None:
    # Given two AMIs on one public snapshot and one public snapshot that backs no owned AMI
    snapshot, lone = "snap-0123456789abcdef0", "snap-0fffffffffffffff0"
    images = [
        image("ami-0bbbbbbbbbbbbbbbb", snapshot_ids=(snapshot,)),
        image("ami-0aaaaaaaaaaaaaaab", snapshot_ids=(snapshot,)),
    ]
    facts = RegionFacts("us-east-1", images, public_snapshots=frozenset({snapshot, lone}))
    # When
    problems = PublicSnapshotCheck().evaluate(facts, context())
    # Then: one finding per snapshot; the lone one names no AMI
    assert [p.snapshot_id for p in problems] == [snapshot, lone]
    assert {p.verdict.type for p in problems} == {FindingType.PUBLIC_SNAPSHOT}
    assert problems[0].verdict.evidence["backed_images"] == ["ami-0aaaaaaaaaaaaaaab", "ami-0bbbbbbbbbbbbbbbb"]
    assert problems[0].remedy == RevokeCreateVolumePermissions(snapshot, (PUBLIC,))
    assert problems[1].image is None and problems[1].verdict.evidence["backed_images"] == []
    assert problems[1].remedy == RevokeCreateVolumePermissions(lone, (PUBLIC,))


def test_snapshot_shared_with_a_stranger_is_an_untrusted_share_when_it_backs_an_ami_or_not() -> None:
    # Given a snapshot behind an AMI shared with a stranger and the partner, a lone one shared with a stranger,
    # one shared with the partner only, and a public one (PublicSnapshotCheck's)
    behind, lone, partner, public = (f"snap-0{digit * 16}" for digit in "abcd")
    facts = RegionFacts(
        "us-east-1",
        [image("ami-0aaaaaaaaaaaaaaab", snapshot_ids=(behind,))],
        snapshot_grants={
            behind: (Grant(GrantKind.USER_ID, STRANGER), Grant(GrantKind.USER_ID, TRUSTED)),
            lone: (Grant(GrantKind.USER_ID, STRANGER),),
            partner: (Grant(GrantKind.USER_ID, TRUSTED),),
            public: (PUBLIC,),
        },
    )
    # When
    problems = SnapshotShareCheck().evaluate(facts, context())
    # Then: only the stranger's grants, each revoked alone
    assert [(p.snapshot_id, p.verdict.type) for p in problems] == [
        (behind, FindingType.UNTRUSTED_SHARE),
        (lone, FindingType.UNTRUSTED_SHARE),
    ]
    assert problems[0].image is not None and problems[0].image.image_id == "ami-0aaaaaaaaaaaaaaab"
    assert problems[1].image is None
    assert problems[0].remedy == RevokeCreateVolumePermissions(behind, (Grant(GrantKind.USER_ID, STRANGER),))


@pytest.mark.parametrize(
    ("state", "expected"),
    [("unblocked", [FindingType.BLOCK_PUBLIC_ACCESS_DISABLED]), ("block-new-sharing", []), (None, [])],
    ids=["off", "on", "not-read"],
)
def test_block_public_access_finding_only_when_it_is_off(state: str | None, expected: list[FindingType]) -> None:
    # Given / When
    access = BlockPublicAccess(state) if state else None
    problems = BlockPublicAccessCheck().evaluate(RegionFacts("eu-west-1", [], block_public_access=access), context())
    # Then
    assert [p.verdict.type for p in problems] == expected
    assert all(p.remedy == BlockNewPublicSharing() for p in problems)


@pytest.mark.parametrize(("state", "found"), [("unblocked", True), ("block-new-sharing", False)])
def test_block_public_access_is_reported_without_remedy_when_a_declarative_policy_manages_it(
    state: str, found: bool
) -> None:
    # Given: the organization's EC2 declarative policy sets the region's state (the account cannot change it)
    access = BlockPublicAccess(state, managed_by="declarative-policy")
    # When
    problems = BlockPublicAccessCheck().evaluate(RegionFacts("eu-west-1", [], block_public_access=access), context())
    # Then: a finding that says so, and nothing for scan --fix or the sweeper to try
    assert len(problems) == int(found)
    for problem in problems:
        assert problem.remedy is None
        assert problem.verdict.evidence == {"state": "unblocked", "managed_by": "declarative-policy"}


@pytest.mark.parametrize(
    ("state", "managed_by", "remedy"),
    [
        ("unblocked", "account", BlockNewPublicSnapshotSharing()),
        ("unblocked", "declarative-policy", None),
        ("block-all-sharing", "account", "none"),
        ("block-new-sharing", "declarative-policy", "none"),
    ],
    ids=["off", "off-by-declarative-policy", "on-all", "on-by-declarative-policy"],
)
def test_snapshot_block_public_access_is_fixed_only_when_the_account_manages_it_when_it_is_off(
    state: str, managed_by: str, remedy: object
) -> None:
    # Given: GetSnapshotBlockPublicAccessState's state and ManagedBy for the region
    access = BlockPublicAccess(state, managed_by=managed_by)
    # When
    problems = SnapshotBlockPublicAccessCheck().evaluate(
        RegionFacts("eu-west-1", [], snapshot_block_public_access=access), context()
    )
    # Then: no finding while it is on; off, a finding, with a remedy only where the account may change it
    if remedy == "none":
        assert problems == []
        return
    [problem] = problems
    assert problem.verdict.type == FindingType.SNAPSHOT_BLOCK_PUBLIC_ACCESS_DISABLED
    assert problem.remedy == remedy
    if managed_by == "declarative-policy":
        assert problem.verdict.evidence == {"state": "unblocked", "managed_by": "declarative-policy"}
        assert "snapshot_block_public_access" in problem.verdict.summary


def _report(*, findings: bool, errors: bool, listed: bool = True) -> ScanReport:
    from amiguard.models.findings import Finding

    report = ScanReport(account=OWN, fix=False, started_at=datetime.now(UTC))
    report.regions.append(RegionResult("us-east-1", listed=listed))
    if findings:
        report.findings.append(
            Finding(type=FindingType.PUBLIC_SHARE, severity=Severity.CRITICAL, summary="s", account=OWN, region="x")
        )
    if errors:
        report.errors.append(ScanError("eu-west-1", "list-images", "denied"))
    return report


@pytest.mark.parametrize(
    ("findings", "errors", "listed", "code"),
    [
        (False, False, True, 0),
        (True, False, True, 1),
        (True, True, True, 1),
        (False, True, True, 2),
        (False, False, False, 2),
    ],
    ids=["clean", "findings", "findings-and-errors", "errors-only", "nothing-listed"],
)
def test_exit_code_is_a_ci_gate_when_scan_outcome_varies(findings: bool, errors: bool, listed: bool, code: int) -> None:
    assert _report(findings=findings, errors=errors, listed=listed).exit_code == code
