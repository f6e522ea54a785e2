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


def test_sweep_reports_and_leaves_block_public_access_alone_when_a_declarative_policy_manages_it(
    sandbox: Sandbox,
) -> None:
    # Given the organization's declarative policy leaves image block public access off in the home region
    set_block_public_access_by_declarative_policy(sandbox.account, sandbox.home, image="unblocked")

    # When
    delivery = sandbox.invoke("sweeper", SCHEDULED_EVENT)

    # Then: a finding saying who manages it, action none, and no EnableImageBlockPublicAccess call at all
    assert delivery.error is None, delivery.error
    [finding] = [a.message for a in sandbox.alerts() if a.message["type"] == "block-public-access-disabled"]
    assert (finding["region"], finding["action"]) == (sandbox.home, "none")
    assert finding["evidence"] == {"state": "unblocked", "managed_by": "declarative-policy"}
    assert "ec2:EnableImageBlockPublicAccess" not in delivery.calls
    state = sandbox.internal_client("ec2").get_image_block_public_access_state()
    assert (state["ImageBlockPublicAccessState"], state["ManagedBy"]) == ("unblocked", "declarative-policy")


def test_sweep_reports_and_leaves_snapshot_block_public_access_alone_when_a_declarative_policy_manages_it(
    sandbox: Sandbox,
) -> None:
    # Given the organization's declarative policy leaves EBS snapshot block public access off in the home region
    set_block_public_access_by_declarative_policy(sandbox.account, sandbox.home, snapshot="unblocked")

    # When
    delivery = sandbox.invoke("sweeper", SCHEDULED_EVENT)

    # Then: a finding saying who manages it, action none, and no EnableSnapshotBlockPublicAccess call at all
    assert delivery.error is None, delivery.error
    [finding] = [a.message for a in sandbox.alerts() if a.message["type"] == "snapshot-block-public-access-disabled"]
    assert (finding["region"], finding["action"]) == (sandbox.home, "none")
    assert finding["evidence"] == {"state": "unblocked", "managed_by": "declarative-policy"}
    assert "ec2:EnableSnapshotBlockPublicAccess" not in delivery.calls
    state = sandbox.internal_client("ec2").get_snapshot_block_public_access_state()
    assert (state["State"], state["ManagedBy"]) == ("unblocked", "declarative-policy")
