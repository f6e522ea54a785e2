"""public_guard: revoke public and untrusted sharing of AMIs and their snapshots, within seconds.

Triggered by ModifyImageAttribute, ModifySnapshotAttribute, DisableImageBlockPublicAccess and
DisableSnapshotBlockPublicAccess (successful calls only), and by the "AWS Service Event via CloudTrail" records
SharedSnapshotVolumeCreated / SharedSnapshotCopyInitiated (another account used one of this account's snapshots:
``shared-snapshot-used``, alerted, nothing to undo). The event says where to look; current state (Describe*)
decides. In ``audit`` mode the same
findings are raised with action ``would-revoke`` and nothing changes. An exposure the event records but current
state no longer shows, and that amiguard's ledger has not already reported, is ``exposure-ended-before-check``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from amiguard.aws.errors import is_gone
from amiguard.models.events import CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE, CloudTrailEvent, CloudTrailServiceEvent
from amiguard.models.findings import Action, Finding
from amiguard.models.settings import Settings
from amiguard.policy.hygiene import SHARED_SNAPSHOT_EVENTS, shared_snapshot_used_verdict
from amiguard.policy.identity import OwnRoles
from amiguard.policy.screening import Drop, check_image_id, check_snapshot_id, read_snapshot_use
from amiguard.policy.sharing import (
    IMAGE_BLOCK_PUBLIC_ACCESS,
    SNAPSHOT_BLOCK_PUBLIC_ACCESS,
    BlockPublicAccess,
    BlockPublicAccessKind,
    ChangeKind,
    Exposure,
    Grant,
    Verdict,
    assess_grants,
    block_public_access_verdict,
    ended_exposure_verdict,
    image_verdicts,
    read_permission_change,
    snapshot_verdicts,
)
from amiguard.services.cloudtrail import handle_cloudtrail, publish_findings, stage_findings
from amiguard.services.outcome import Outcome, Status
from amiguard.services.ports import AlertsPort, ExposureRecordsPort, ImagesInRegion, ImagesPort


def _unless_gone[T](describe: Callable[[], T | None]) -> T | None:
    """``describe()``, or ``None`` when EC2 says the resource does not exist (any more)."""
    try:
        return describe()
    except ClientError as error:
        if is_gone(error):
            return None
        raise


EVENT_NAMES = frozenset(
    {
        "ModifyImageAttribute",
        "ModifySnapshotAttribute",
        "DisableImageBlockPublicAccess",
        "DisableSnapshotBlockPublicAccess",
    }
)


class PublicGuard:
    """Decides from current sharing state and revokes what is public or untrusted."""

    def __init__(
        self,
        *,
        settings: Settings,
        images: ImagesInRegion,
        alerts: AlertsPort,
        exposures: ExposureRecordsPort | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._exposures = exposures
        self._own = OwnRoles.of(settings.own_role_arns, organization=settings.organization)
        self._images = images
        self._alerts = alerts
        self._clock = clock

    def handle(self, raw_event: dict[str, Any]) -> Outcome:
        """Screen, parse and act on one EventBridge event."""
        if isinstance(raw_event, dict) and raw_event.get("detail-type") == CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE:
            return self._on_shared_snapshot_used(raw_event)
        return handle_cloudtrail(raw_event, expected_names=EVENT_NAMES, own=self._own, act=self._act)

    def publish(self, outcome: Outcome) -> None:
        publish_findings(self._alerts, outcome)

    def _act(self, event: CloudTrailEvent) -> Outcome:
        images = self._images(event.detail.aws_region)
        if event.detail.event_name == "ModifyImageAttribute":
            return self._guard_image(event, images)
        if event.detail.event_name == "ModifySnapshotAttribute":
            return self._guard_snapshot(event, images)
        if event.detail.event_name == "DisableSnapshotBlockPublicAccess":
            return self._guard_snapshot_block_public_access(event, images)
        return self._guard_block_public_access(event, images)

    # --- AMIs -------------------------------------------------------------------------------------------

    def _guard_image(self, event: CloudTrailEvent, images: ImagesPort) -> Outcome:
        params = event.detail.params
        image_id = params.get("imageId")
        if drop := check_image_id(image_id):
            return Outcome.dropped(drop)
        change = read_permission_change(params, attribute="launchPermission")
        if change.kind is ChangeKind.OTHER_ATTRIBUTE:
            return Outcome.dropped(Drop("other-attribute", "the call changed an attribute other than launchPermission"))
        if change.kind is ChangeKind.REMOVES_ONLY:
            return Outcome.dropped(Drop("removal", "the call only removed launch permissions"))

        image = _unless_gone(lambda: images.owned_image(str(image_id)))
        if image is None:
            # Only the owner can change launch permissions: the AMI was deregistered since (or is not ours).
            if ended := self._ended_exposure(event, "AMI", str(image_id), change.added, gone=True):
                return ended
            return Outcome.dropped(Drop("not-owned", f"{image_id} is not owned by this account"))
        public_allowed = image.image_id in self._settings.public_allowlist
        if change.only_public_added:
            # DescribeImages already says whether the AMI is public: no DescribeImageAttribute needed.
            grants = [Grant(change.added[0].kind, "all")] if image.public else []
        else:
            grants = images.launch_permissions(image.image_id)
        exposure = assess_grants(
            grants,
            own_account=image.owner_id,
            trusted_principals=self._settings.trusted_principals,
            public_allowed=public_allowed,
        )
        if not exposure.exposed:
            if not (public_allowed and image.public) and (
                ended := self._ended_exposure(event, "AMI", image.image_id, change.added, gone=False)
            ):
                return ended
            reason = "allow-listed" if public_allowed and image.public else "not-exposed"
            return Outcome.clean(reason, f"{image.image_id} is not shared beyond trusted principals")
        findings = [
            self._finding(event, verdict, image_id=image.image_id, image_name=image.name)
            for verdict in image_verdicts(image.image_id, exposure)
        ]
        stage_findings(self._alerts, findings)  # before revoking: a retry after a failed alert still alerts
        if self._settings.enforcing:
            images.revoke_launch_permissions(image.image_id, exposure.to_revoke)
        return Outcome(Status.ACTED, "revoked" if self._settings.enforcing else "would-revoke", findings=findings)

    # --- snapshots --------------------------------------------------------------------------------------

    def _guard_snapshot(self, event: CloudTrailEvent, images: ImagesPort) -> Outcome:
        params = event.detail.params
        snapshot_id = params.get("snapshotId")
        if drop := check_snapshot_id(snapshot_id):
            return Outcome.dropped(drop)
        change = read_permission_change(params, attribute="createVolumePermission")
        if change.kind is ChangeKind.OTHER_ATTRIBUTE:
            return Outcome.dropped(
                Drop("other-attribute", "the call changed an attribute other than createVolumePermission")
            )
        if change.kind is ChangeKind.REMOVES_ONLY:
            return Outcome.dropped(Drop("removal", "the call only removed create-volume permissions"))

        snapshot = _unless_gone(lambda: images.owned_snapshot(str(snapshot_id)))
        if snapshot is None:
            if ended := self._ended_exposure(event, "Snapshot", str(snapshot_id), change.added, gone=True):
                return ended
            return Outcome.dropped(Drop("not-owned", f"{snapshot_id} is not owned by this account"))
        exposure: Exposure = assess_grants(
            images.create_volume_permissions(snapshot.snapshot_id),
            own_account=snapshot.owner_id,
            trusted_principals=self._settings.trusted_principals,
        )
        if not exposure.exposed:
            if ended := self._ended_exposure(event, "Snapshot", snapshot.snapshot_id, change.added, gone=False):
                return ended
            return Outcome.clean("not-exposed", f"{snapshot.snapshot_id} is not shared beyond trusted accounts")
        backed = images.images_backed_by(snapshot.snapshot_id)
        findings = [
            self._finding(event, verdict, image_id=backed[0] if backed else None, snapshot_id=snapshot.snapshot_id)
            for verdict in snapshot_verdicts(snapshot.snapshot_id, backed, exposure)
        ]
        stage_findings(self._alerts, findings)
        if self._settings.enforcing:
            images.revoke_create_volume_permissions(snapshot.snapshot_id, exposure.to_revoke)
        return Outcome(Status.ACTED, "revoked" if self._settings.enforcing else "would-revoke", findings=findings)

    # --- account-level image and EBS snapshot block public access ---------------------------------------

    def _guard_block_public_access(self, event: CloudTrailEvent, images: ImagesPort) -> Outcome:
        return self._restore_block_public_access(
            event, images.block_public_access_state(), IMAGE_BLOCK_PUBLIC_ACCESS, images.block_new_public_sharing
        )

    def _guard_snapshot_block_public_access(self, event: CloudTrailEvent, images: ImagesPort) -> Outcome:
        return self._restore_block_public_access(
            event,
            images.snapshot_block_public_access_state(),
            SNAPSHOT_BLOCK_PUBLIC_ACCESS,
            images.block_new_public_snapshot_sharing,
        )

    def _restore_block_public_access(
        self,
        event: CloudTrailEvent,
        access: BlockPublicAccess,
        kind: BlockPublicAccessKind,
        restore: Callable[[], None],
    ) -> Outcome:
        """Turn the region's block public access back on, unless it is on again or a declarative policy manages it."""
        if access.blocked:
            return Outcome.clean("already-blocked", f"{kind.name} block public access is on again ({access.state})")
        verdict = block_public_access_verdict(
            event.detail.aws_region, access.state, managed_by=access.managed_by, kind=kind
        )
        finding = self._finding(event, verdict, image_id=None)
        if not access.restorable:
            # EC2 refuses the account's change to a setting a declarative policy manages: nothing to try, say so.
            finding = finding.model_copy(update={"action": Action.NONE, "exposure_seconds": None})
            stage_findings(self._alerts, [finding])
            return Outcome(Status.ACTED, "managed-by-declarative-policy", finding.summary, findings=[finding])
        stage_findings(self._alerts, [finding])
        if self._settings.enforcing:
            restore()
        return Outcome(Status.ACTED, "revoked" if self._settings.enforcing else "would-revoke", findings=[finding])

    # --- another account used a shared snapshot (a CloudTrail service event) ----------------------------

    def _on_shared_snapshot_used(self, raw_event: dict[str, Any]) -> Outcome:
        """``shared-snapshot-used``: who used which snapshot, whether that account is trusted, whether it is
        still shared. Alert only: the data is in the other account; the share itself is revoked on its own
        event (ModifySnapshotAttribute) or by the sweep."""
        use = read_snapshot_use(raw_event, expected_names=SHARED_SNAPSHOT_EVENTS)
        if isinstance(use, Drop):
            return Outcome.dropped(use, raw_event.get("id"))
        event, snapshot_id, used_by = use.event, use.snapshot_id, use.used_by
        record = event.detail
        event_id = record.event_id or event.id
        images = self._images(record.aws_region)
        still_shared: bool | None
        try:
            snapshot = images.owned_snapshot(str(snapshot_id))
        except ClientError as error:
            if not is_gone(error):
                raise
            snapshot, still_shared = None, None  # deleted since: the event is all that is left of the use
        else:
            if snapshot is None:
                return Outcome.dropped(Drop("not-owned", f"{snapshot_id} is not owned by this account"), event_id)
            grants = images.create_volume_permissions(snapshot.snapshot_id)
            still_shared = any(grant.is_public or grant.value == used_by for grant in grants)
        verdict = shared_snapshot_used_verdict(
            use,
            trusted_principals=self._settings.trusted_principals,
            backed_images=images.images_backed_by(snapshot_id) if snapshot is not None else [],
            still_shared=still_shared,
        )
        finding = self._finding(event, verdict, image_id=None, snapshot_id=str(snapshot_id))
        finding = finding.model_copy(update={"action": Action.NONE, "exposure_seconds": None, "actor": used_by})
        outcome = Outcome(Status.ACTED, "shared-snapshot-used", verdict.summary, findings=[finding])
        outcome.event_id = event_id
        outcome.event_time = event.occurred_at
        return outcome

    # --- exposure the event records but current state no longer shows ----------------------------------

    def _ended_exposure(
        self, event: CloudTrailEvent, kind: str, resource_id: str, added: Sequence[Grant], *, gone: bool
    ) -> Outcome | None:
        """The ``exposure-ended-before-check`` outcome, or ``None`` when there is nothing to report.

        The event's own grants say what was exposed (nothing when it cannot tell). Unless amiguard's ledger
        already holds a finding on it since the event's time (a redelivered event, or amiguard's own revocation
        came first), someone ended the exposure before amiguard looked: nothing to revoke, but it happened.
        Without a ledger, "no longer shared" cannot be told from amiguard's own revocation: not reported.
        """
        account = event.account_id or ""
        if account not in self._own.stack_accounts and not self._settings.organization:
            return None  # about another account (or forged): nothing says it was ever exposed
        # (organization mode: every account is one amiguard acts in, through its member role)
        exposure = assess_grants(
            added,
            own_account=account,
            trusted_principals=self._settings.trusted_principals,
            public_allowed=kind == "AMI" and resource_id in self._settings.public_allowlist,
        )
        if not exposure.exposed or (self._exposures is None and not gone):
            return None
        occurred = event.occurred_at or self._clock()
        image_id, snapshot_id = (resource_id, None) if kind == "AMI" else (None, resource_id)
        region = event.detail.aws_region
        if self._exposures is not None and self._exposures.reported_since(
            region, occurred, event_id=event.detail.event_id or event.id, image_id=image_id, snapshot_id=snapshot_id
        ):
            return None
        verdict = ended_exposure_verdict(kind, resource_id, exposure, gone=gone, actor=event.detail.actor)
        finding = self._finding(event, verdict, image_id=image_id, snapshot_id=snapshot_id)
        finding = finding.model_copy(update={"action": Action.NONE, "exposure_seconds": None})
        return Outcome(Status.ACTED, "exposure-ended-before-check", verdict.summary, findings=[finding])

    # --- findings ---------------------------------------------------------------------------------------

    def _finding(self, event: CloudTrailEvent | CloudTrailServiceEvent, verdict: Verdict, **resource: Any) -> Finding:
        enforcing = self._settings.enforcing
        occurred = event.occurred_at
        exposure = (self._clock() - occurred).total_seconds() if enforcing and occurred else None
        return Finding(
            type=verdict.type,
            severity=verdict.severity,
            summary=verdict.summary,
            account=event.account_id or "",
            region=event.detail.aws_region,
            actor=event.detail.actor,
            event_id=event.detail.event_id or event.id,
            event_time=occurred,
            action=Action.REVOKED if enforcing else Action.WOULD_REVOKE,
            evidence=verdict.evidence,
            exposure_seconds=max(exposure, 0.0) if exposure is not None else None,
            **resource,
        )
