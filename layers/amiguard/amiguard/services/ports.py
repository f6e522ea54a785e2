"""What the services need from the outside world. Adapters in :mod:`amiguard.aws` satisfy these."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from amiguard.aws.ledger import Claim, StagedFinding
from amiguard.aws.securityhub import HubOutcome
from amiguard.models.exceptions import FindingException
from amiguard.models.findings import Finding
from amiguard.models.images import Image, Snapshot
from amiguard.policy.sharing import BlockPublicAccess, Grant

if TYPE_CHECKING:  # types only: importing a port must not pull in the policy of functions that do not use it
    from amiguard.aws.clients import ClientFactory
    from amiguard.policy.coverage import DeploymentState, RuleState
    from amiguard.policy.tagging import ViolationRecord
    from amiguard.policy.tampering import OwnResources


class ImagesPort(Protocol):
    region: str

    def owned_image(self, image_id: str) -> Image | None: ...
    def launch_permissions(self, image_id: str) -> list[Grant]: ...
    def revoke_launch_permissions(self, image_id: str, grants: Sequence[Grant]) -> None: ...
    def owned_snapshot(self, snapshot_id: str) -> Snapshot | None: ...
    def create_volume_permissions(self, snapshot_id: str) -> list[Grant]: ...
    def revoke_create_volume_permissions(self, snapshot_id: str, grants: Sequence[Grant]) -> None: ...
    def images_backed_by(self, snapshot_id: str) -> list[str]: ...
    def block_public_access_state(self) -> BlockPublicAccess: ...
    def block_new_public_sharing(self) -> None: ...
    def snapshot_block_public_access_state(self) -> BlockPublicAccess: ...
    def block_new_public_snapshot_sharing(self) -> None: ...


class ExposureRecordsPort(Protocol):
    """What amiguard already reported (its ledger): tells a redelivered or already handled exposure from one
    that someone else ended before amiguard looked (:class:`amiguard.aws.exposures.LedgerExposures`)."""

    def reported_since(
        self,
        region: str,
        since: datetime,
        *,
        event_id: str | None = None,
        image_id: str | None = None,
        snapshot_id: str | None = None,
    ) -> bool: ...


class AlertResult(StrEnum):
    """What the alert path did with one finding."""

    SENT = "sent"
    SUPPRESSED = "suppressed"  # a duplicate inside its window (or a standing finding inside RealertHours)
    EXCEPTED = "excepted"  # covered by a reviewed exception (parameter Exceptions): recorded, not alerted


class FindingsHubPort(Protocol):
    """Where security teams triage: AWS Security Hub (:class:`amiguard.aws.securityhub.SecurityHubExport`)."""

    def export(self, finding: Finding, *, excepted: FindingException | None = None) -> HubOutcome: ...


class AlertsPort(Protocol):
    """Publishes one finding. SNS alone returns None; the ledgered path says whether it was sent."""

    def publish(self, finding: Finding) -> AlertResult | None: ...


@runtime_checkable
class OutboxPort(Protocol):
    """An alert path with an outbox (:class:`amiguard.services.alerting.LedgeredAlerts`).

    ``stage`` before remediating; ``publish`` after; ``publish_pending`` alerts every row of an event still
    pending, ``publish_stale_pending`` those an invocation left behind (the sweeper). A plain
    :class:`AlertsPort` (SNS alone, a test's fake) has no outbox: services call it through
    :func:`amiguard.services.cloudtrail.stage_findings` and ``publish_findings``, which check.
    """

    def stage(self, findings: Sequence[Finding]) -> None: ...
    def publish(self, finding: Finding) -> AlertResult | None: ...
    def publish_pending(self, event_id: str | None, event_time: datetime) -> list[AlertResult]: ...
    def publish_stale_pending(self) -> list[AlertResult]: ...


ImagesInRegion = Callable[[str], ImagesPort]


class TaggingPort(Protocol):
    """Tag reads and writes for AMIs, snapshots and instances in one region (see amiguard.aws.tags)."""

    region: str

    def owned_image(self, image_id: str) -> Image | None: ...
    def owned_images(self, image_ids: Sequence[str]) -> list[Image]: ...
    def any_image(self, image_id: str) -> Image | None: ...
    def instance_tags(self, instance_id: str) -> dict[str, str] | None: ...
    def snapshot_tags(self, snapshot_ids: Sequence[str]) -> dict[str, dict[str, str]]: ...
    def images_in_violation(self) -> list[Image]: ...
    def instances_using(self, image_id: str) -> int: ...
    def add_tags(self, resource_ids: Iterable[str], tags: Mapping[str, str]) -> int: ...
    def remove_tags(self, resource_ids: Iterable[str], keys: Iterable[str]) -> int: ...
    def deprecate(self, image_id: str, at: datetime) -> None: ...
    def disable(self, image_id: str) -> None: ...
    def deregister(self, image_id: str) -> None: ...


TaggingInRegion = Callable[[str], TaggingPort]


class ViolationLedgerPort(Protocol):
    """amiguard's own record of tag violations (:class:`amiguard.aws.violations.DynamoViolations`)."""

    def records(self, account: str, region: str, image_ids: Sequence[str]) -> dict[str, ViolationRecord]: ...
    def in_region(self, account: str, region: str) -> dict[str, ViolationRecord]: ...
    def record(self, account: str, region: str, image_id: str, violation: str, since: datetime) -> ViolationRecord: ...
    def update(self, account: str, region: str, image_id: str, violation: str) -> None: ...
    def clear(self, account: str, region: str, image_id: str) -> None: ...


class AlertLedgerPort(Protocol):
    """What the alert path needs from the ledger (:class:`amiguard.aws.ledger.DynamoLedger`)."""

    def stage(self, finding: Finding) -> bool: ...
    def claim(
        self,
        finding: Finding,
        *,
        window: timedelta | None = None,
        fingerprint: str | None = None,
        key: tuple[str, str] | None = None,
    ) -> Claim: ...
    def confirm_sent(self, claim: Claim) -> None: ...
    def release(self, claim: Claim) -> None: ...
    def mark_excepted(self, key: tuple[str, str], exception: FindingException) -> None: ...
    def pending_for_event(self, event_id: str | None, event_time: datetime) -> list[StagedFinding]: ...
    def pending_since(self, since: datetime, *, staged_before: datetime) -> list[StagedFinding]: ...


class DeploymentPort(Protocol):
    """amiguard's own rules, functions and trail as AWS reports them (see amiguard.aws.deployment)."""

    def read(self, own: OwnResources) -> DeploymentState: ...


class OrganizationPort(Protocol):
    """The organization's accounts (:class:`~amiguard.aws.fanout.OrganizationAccounts`): ``(id, name)`` of each
    ACTIVE one."""

    def active_accounts(self) -> list[tuple[str, str]]: ...


class SweepQueuePort(Protocol):
    """The sweeper's queue of accounts to sweep (:class:`~amiguard.aws.fanout.SqsSweepQueue`)."""

    def send(self, body: str) -> None: ...


class ForwardingPort(Protocol):
    """A member account's forwarding rules, region by region (:class:`~amiguard.aws.fanout.ForwardingRules`)."""

    def rules(self, region: str, names: Sequence[str]) -> Mapping[str, RuleState]: ...


class ActingAccounts(Protocol):
    """The accounts a function acts in (:class:`amiguard.aws.accounts.AccountClients`)."""

    @property
    def organization(self) -> bool: ...

    def clients_of(self, account: str) -> ClientFactory: ...

    def name_of(self, account: str) -> str | None: ...
