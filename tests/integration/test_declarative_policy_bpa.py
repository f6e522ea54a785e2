"""Image and EBS snapshot block public access set by an organization's EC2 declarative policy: the sweeper (and so
scan --fix) reports it and never tries to turn it back on, since EC2 refuses the account's change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.moto_gaps import set_block_public_access_by_declarative_policy
from tests.integration.test_sweeper import SCHEDULED_EVENT


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(parameters={"Mode": "enforce", "RequiredTags": ""}) as sb:
        yield sb


KINDS = {
    # finding type -> the declarative policy's setting, the call amiguard must not make, how to read the state back
    "block-public-access-disabled": (
        {"image": "unblocked"},
        "ec2:EnableImageBlockPublicAccess",
        lambda ec2: ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"],
    ),
    "snapshot-block-public-access-disabled": (
        {"snapshot": "unblocked"},
        "ec2:EnableSnapshotBlockPublicAccess",
        lambda ec2: ec2.get_snapshot_block_public_access_state()["State"],
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sweep_reports_and_leaves_block_public_access_alone_when_a_declarative_policy_manages_it(
    sandbox: Sandbox, kind: str
) -> None:
    # Given the organization's declarative policy leaves image (or EBS snapshot) block public access off
    policy, enable, state_of = KINDS[kind]
    set_block_public_access_by_declarative_policy(sandbox.account, sandbox.home, **policy)

    # When
    delivery = sandbox.invoke("sweeper", SCHEDULED_EVENT)

    # Then: a finding saying who manages it, action none, and no call to turn it back on at all
    assert delivery.error is None, delivery.error
    [finding] = [a.message for a in sandbox.alerts() if a.message["type"] == kind]
    assert (finding["region"], finding["action"]) == (sandbox.home, "none")
    assert finding["evidence"] == {"state": "unblocked", "managed_by": "declarative-policy"}
    assert enable not in delivery.calls
    assert state_of(sandbox.internal_client("ec2")) == "unblocked"
