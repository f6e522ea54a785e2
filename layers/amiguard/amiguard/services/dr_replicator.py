"""dr_replicator: copy approved AMIs to the DR regions, encrypted and tagged, once, and track each copy.

Triggered by (successful calls only) CreateTags / DeleteTags on ``ami-*`` touching the approval tag,
CreateImage / CopyImage / RegisterImage carrying it in ``tagSpecificationSet``, DeregisterImage, and the
"EC2 AMI State Change" events ``available`` and ``failed`` (those of DR regions arrive forwarded to the
home region's bus with their own ``region``; see README). The event says where to look; DescribeImages
and the replica ledger decide. Each destination region is handled on its own: one failing never stops
the others. In ``audit`` mode nothing is copied or cleaned up; findings say ``would-copy``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError
from pydantic import ValidationError

from amiguard.aws.errors import error_code, is_gone
from amiguard.models.events import (
    AMI_STATE_CHANGE_DETAIL_TYPE,
    CLOUDTRAIL_DETAIL_TYPE,
    AmiStateChangeEvent,
    CloudTrailEvent,
)
from amiguard.models.findings import Action, Finding, FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.replicas import ReplicaRecord, ReplicaStatus
from amiguard.models.settings import ACCOUNT_ID, REGION, ReplicaCleanup, Settings
from amiguard.policy.identity import OwnRoles
from amiguard.policy.replication import (
    BLOCKER_EXPLANATIONS,
    CLEANABLE_STATUSES,
    LIVE_STATUSES,
    CopyRequest,
    Readiness,
    after_copy_error,
    approval_change,
    cleanup_verb,
    copy_request,
    deprecate_at,
    destination_regions,
    is_approved,
    is_replica,
    readiness,
    regions_to_copy,
    replica_of_value,
    replica_source,
    replication_blocker,
)
from amiguard.policy.screening import Drop, check_image_id, malformed_event, screen_cloudtrail
from amiguard.services.cloudtrail import publish_findings
from amiguard.services.outcome import Measurement, Outcome, Status
from amiguard.services.ports import AlertsPort

EVENT_NAMES = frozenset({"CreateTags", "DeleteTags", "CreateImage", "CopyImage", "RegisterImage", "DeregisterImage"})
TRACKED_STATES = frozenset({"available", "failed"})
LATENCY_METRIC = "ReplicationSeconds"
CLEANUP_ACTIONS = {ReplicaCleanup.DEPRECATE: Action.DEPRECATED, ReplicaCleanup.DEREGISTER: Action.DEREGISTERED}
CLEANUP_STATUSES = {
    ReplicaCleanup.DEPRECATE: ReplicaStatus.DEPRECATED,
    ReplicaCleanup.DEREGISTER: ReplicaStatus.DEREGISTERED,
}


class ReplicationPort(Protocol):
    region: str

    def image(self, image_id: str) -> Image | None: ...
    def replicas_of(self, source_region: str, source_image_id: str) -> list[Image]: ...
    def copy_image(self, request: CopyRequest) -> str: ...
    def deprecate(self, image_id: str, at: datetime) -> None: ...
    def deregister(self, image_id: str) -> None: ...


class ReplicaLedgerPort(Protocol):
    def replicas(self, source_region: str, source_image_id: str) -> dict[str, ReplicaRecord]: ...
    def claim(self, record: ReplicaRecord) -> bool: ...
    def put(self, record: ReplicaRecord) -> None: ...
    def replace_if(self, record: ReplicaRecord, *, unless_status: ReplicaStatus) -> bool: ...
    def finish(
        self,
        source_region: str,
        source_image_id: str,
        destination_region: str,
        *,
        replica_id: str,
        status: ReplicaStatus,
        finished_at: datetime,
        error: str | None = None,
    ) -> ReplicaRecord | None: ...


ReplicationInRegion = Callable[[str], ReplicationPort]


class ReplicationRetry(RuntimeError):
    """CopyImage failed transiently in some regions: raised so that Lambda retries the event (bounded)."""


@dataclass
class _Context:
    """What every finding of one event carries."""

    account: str
    event_id: str | None
    event_time: datetime | None
    actor: str | None = None


@dataclass
class _Work:
    findings: list[Finding] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    retry_regions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def outcome(self, event_id: str | None) -> Outcome:
        status = Status.ACTED if self.findings else Status.CLEAN
        reason = self.findings[0].type.value if self.findings else (self.notes[0] if self.notes else "nothing-to-do")
        outcome = Outcome(status, reason, "; ".join(self.notes), findings=self.findings, event_id=event_id)
        outcome.measurements = self.measurements
        if self.retry_regions:
            outcome.retry_error = ReplicationRetry(
                "CopyImage failed transiently in " + ", ".join(self.retry_regions) + "; retrying the event"
            )
        return outcome


class DrReplicator:
    """Copies approved AMIs to ``settings.dr_regions`` and keeps the replica ledger."""

    def __init__(
        self,
        *,
        settings: Settings,
        replication: ReplicationInRegion,
        ledger: ReplicaLedgerPort,
        alerts: AlertsPort,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._replication = replication
        self._ledger = ledger
        self._alerts = alerts
        self._clock = clock

    # --- entry ------------------------------------------------------------------------------------------

    def handle(self, raw_event: dict[str, Any]) -> Outcome:
        """Screen, parse and act on one EventBridge event."""
        detail_type = raw_event.get("detail-type")
        try:
            if detail_type == AMI_STATE_CHANGE_DETAIL_TYPE:
                return self._on_state_change(AmiStateChangeEvent.model_validate(raw_event))
            if detail_type == CLOUDTRAIL_DETAIL_TYPE:
                return self._on_api_call(CloudTrailEvent.model_validate(raw_event))
        except ValidationError as error:
            return Outcome.dropped(malformed_event(error), raw_event.get("id"))
        return Outcome.dropped(Drop("unhandled-event", f"detail-type {detail_type!r} is not handled here"))

    def publish(self, outcome: Outcome) -> None:
        publish_findings(self._alerts, outcome)

    # --- CloudTrail ---------------------------------------------------------------------------------------

    def _on_api_call(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        event_id = record.event_id or event.id
        own = OwnRoles.of(self._settings.own_role_arns)
        if drop := screen_cloudtrail(event, expected_names=EVENT_NAMES, own=own):
            return Outcome.dropped(drop, event_id)
        context = _Context(event.account_id or "", event_id, event.occurred_at, record.actor)
        region = record.aws_region
        if record.event_name == "DeregisterImage":
            raw_id = record.params.get("imageId")
            if drop := check_image_id(raw_id):
                return Outcome.dropped(drop, event_id)
            image_id = str(raw_id)
            return self._guarded(lambda work: self._clean_up_replicas(region, image_id, context, work), event_id)
        if not self._settings.dr_regions:
            return Outcome.dropped(Drop("replication-off", "AMIGUARD_DR_REGIONS is empty"), event_id)
        change = approval_change(record.event_name, record.params, record.response, self._settings.approval_tag)
        if change.empty:
            detail = f"{record.event_name} does not set or remove {self._settings.approval_tag!r} on an AMI"
            if change.ignored:
                detail += f" (malformed ids ignored: {', '.join(change.ignored)})"
            return Outcome.dropped(Drop("no-approval-change", detail), event_id)

        def act(work: _Work) -> None:
            replication = self._replication(region)
            for image_id in change.granted:
                image = replication.image(image_id)
                if image is None:
                    work.notes.append(f"{image_id} is gone")
                    continue
                self._replicate(image, context, work)
            for image_id in change.removed:
                self._approval_removed(replication, image_id, context, work)

        return self._guarded(act, event_id)

    # --- EC2 AMI State Change -----------------------------------------------------------------------------

    def _on_state_change(self, event: AmiStateChangeEvent) -> Outcome:
        event_id = event.id
        region, account, detail = event.region or "", event.account or "", event.detail
        if not REGION.match(region):
            return Outcome.dropped(Drop("malformed-event", f"region {region!r} is not an AWS region"), event_id)
        if not ACCOUNT_ID.match(account):
            return Outcome.dropped(Drop("malformed-event", f"account {account!r} is not an account id"), event_id)
        if drop := check_image_id(detail.image_id):
            return Outcome.dropped(drop, event_id)
        if detail.state not in TRACKED_STATES:
            return Outcome.dropped(Drop("untracked-state", f"{detail.image_id} is {detail.state}"), event_id)
        context = _Context(account, event_id, event.time)

        def act(work: _Work) -> None:
            image = self._replication(region).image(detail.image_id)
            if image is None:
                work.notes.append("image-gone")
                return
            if is_replica(image):
                self._track_replica(image, detail.state, detail.error_message, context, work)
            elif not is_approved(image.tags, self._settings.approval_tag):
                work.notes.append("not-approved")
            elif self._settings.dr_regions:
                self._replicate(image, context, work)
            else:
                work.notes.append("replication-off")

        return self._guarded(act, event_id)

    def _guarded(self, act: Callable[[_Work], None], event_id: str | None) -> Outcome:
        work = _Work()
        try:
            act(work)
        except ClientError as error:
            if not is_gone(error):
                raise  # transient or unexpected: Lambda retries, then the dead-letter queue keeps it
            return Outcome.dropped(Drop("resource-gone", str(error)), event_id)
        return work.outcome(event_id)

    # --- replicate ----------------------------------------------------------------------------------------

    def _replicate(self, image: Image, context: _Context, work: _Work) -> None:
        """Copy an approved source to every DR region that has no live replica yet."""
        if is_replica(image):
            work.notes.append("is-replica")
            return
        if not is_approved(image.tags, self._settings.approval_tag):
            work.notes.append("not-approved")
            return
        if blocker := replication_blocker(image, context.account):
            work.findings.append(
                self._finding(
                    context,
                    FindingType.NOT_REPLICABLE,
                    Severity.MEDIUM,
                    f"Approved AMI {image.image_id} cannot be copied to DR regions: {BLOCKER_EXPLANATIONS[blocker]}",
                    image,
                    evidence={"reason": blocker.value, "owner": image.owner_id, "product_codes": image.product_codes},
                )
            )
            return
        state = readiness(image)
        if state is Readiness.WAIT:
            work.notes.append("source-pending")  # its "available" state change triggers the copy
            return
        if state is Readiness.FAILED:
            work.findings.append(
                self._finding(
                    context,
                    FindingType.IMAGE_FAILED,
                    Severity.MEDIUM,
                    f"Approved AMI {image.image_id} failed to become available: nothing to copy",
                    image,
                    evidence={"state": image.state},
                )
            )
            return
        if state is Readiness.UNUSABLE:
            work.notes.append(f"source-{image.state}")
            return
        destinations = destination_regions(image.region, self._settings.dr_regions)
        if not destinations:
            work.notes.append("no-other-dr-region")
            return
        rows = self._ledger.replicas(image.region, image.image_id)
        todo = regions_to_copy(destinations, {region: row.status for region, row in rows.items()})
        if not todo:
            work.notes.append("already-replicated")
            return
        for region in todo:
            try:
                self._replicate_to(image, region, rows.get(region), context, work)
            except ClientError as error:
                # Not CopyImage's (handled inside): a lookup failed. Isolate the region, retry the event.
                work.notes.append(f"{region}: {error_code(error)}")
                work.retry_regions.append(region)

    def _replicate_to(
        self, image: Image, region: str, row: ReplicaRecord | None, context: _Context, work: _Work
    ) -> None:
        destination = self._replication(region)
        request = copy_request(image, region, self._settings.dr_kms_keys)
        now = self._clock()
        base = ReplicaRecord(
            source_region=image.region,
            source_image_id=image.image_id,
            destination_region=region,
            status=ReplicaStatus.PENDING,
            started_at=now,
            kms_key_id=request.kms_key_id,
            client_token=request.client_token,
        )
        existing = [replica for replica in destination.replicas_of(image.region, image.image_id)]
        if existing:
            # A copy exists that the ledger does not know (lost row, or made before): adopt it, copy nothing.
            replica = existing[0]
            status = ReplicaStatus.AVAILABLE if replica.state == "available" else ReplicaStatus.PENDING
            adopted = base.model_copy(update={"replica_id": replica.image_id, "status": status})
            if status is ReplicaStatus.AVAILABLE:
                adopted = adopted.model_copy(update={"finished_at": now})
            self._ledger.claim(adopted)
            work.notes.append(f"{region}: adopted {replica.image_id}")
            return
        if not self._settings.enforcing:
            if self._ledger.replace_if(
                base.model_copy(update={"status": ReplicaStatus.WOULD_COPY}), unless_status=ReplicaStatus.WOULD_COPY
            ):
                work.findings.append(self._started(context, image, region, None, request, Action.WOULD_COPY))
            return
        try:
            replica_id = destination.copy_image(request)
        except ClientError as error:
            self._copy_failed(image, region, row, base, error, context, work)
            return
        if self._ledger.claim(base.model_copy(update={"replica_id": replica_id})):
            work.findings.append(self._started(context, image, region, replica_id, request, Action.COPIED))
        else:
            work.notes.append(f"{region}: another invocation recorded the copy")

    def _copy_failed(
        self,
        image: Image,
        region: str,
        row: ReplicaRecord | None,
        base: ReplicaRecord,
        error: ClientError,
        context: _Context,
        work: _Work,
    ) -> None:
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", ""))
        previous = row.attempts if row and row.status is ReplicaStatus.RETRYING else 0
        verdict = after_copy_error(code, previous)
        failed = base.model_copy(
            update={
                "status": ReplicaStatus.RETRYING if verdict.retry else ReplicaStatus.FAILED,
                "attempts": verdict.attempts,
                "last_error": f"{code}: {message}"[:1000],
                "finished_at": None if verdict.retry else self._clock(),
            }
        )
        self._ledger.put(failed)
        if verdict.retry:
            work.notes.append(f"{region}: {code}, attempt {verdict.attempts}")
            work.retry_regions.append(region)
            return
        work.findings.append(
            self._finding(
                context,
                FindingType.REPLICATION_FAILED,
                Severity.HIGH,
                f"Copying AMI {image.image_id} to {region} failed ({code}) after {verdict.attempts} attempt(s)",
                image,
                evidence={
                    "destination_region": region,
                    "error_code": code,
                    "error_message": message,
                    "attempts": verdict.attempts,
                    "kms_key_id": base.kms_key_id,
                },
            )
        )

    def _started(
        self,
        context: _Context,
        image: Image,
        region: str,
        replica_id: str | None,
        request: CopyRequest,
        action: Action,
    ) -> Finding:
        verb = "Copying" if action is Action.COPIED else "Would copy"
        key = request.kms_key_id or "the region's default EBS key"
        return self._finding(
            context,
            FindingType.REPLICATION_STARTED,
            Severity.INFO,
            f"{verb} approved AMI {image.image_id} to {region}, encrypted with {key}",
            image,
            action=action,
            evidence={
                "destination_region": region,
                "replica_id": replica_id,
                "client_token": request.client_token,
                "kms_key_id": request.kms_key_id,
            },
        )

    # --- completion ---------------------------------------------------------------------------------------

    def _track_replica(
        self, replica: Image, state: str, error_message: str | None, context: _Context, work: _Work
    ) -> None:
        source = replica_source(replica)
        if source is None:
            work.notes.append("malformed-replica-tag")
            return
        source_region, source_id = source
        status = ReplicaStatus.AVAILABLE if state == "available" else ReplicaStatus.FAILED
        record = self._ledger.finish(
            source_region,
            source_id,
            replica.region,
            replica_id=replica.image_id,
            status=status,
            finished_at=self._clock(),
            error=error_message or None,
        )
        if record is None:
            work.notes.append("already-recorded")
            return
        latency = record.latency_seconds
        evidence: dict[str, Any] = {
            "source": replica_of_value(source_region, source_id),
            "replica_id": replica.image_id,
            "destination_region": replica.region,
            "latency_seconds": latency,
        }
        if status is ReplicaStatus.AVAILABLE:
            if latency is not None:
                work.measurements.append(Measurement(LATENCY_METRIC, latency))
            work.findings.append(
                self._finding(
                    context,
                    FindingType.REPLICATION_COMPLETE,
                    Severity.INFO,
                    f"DR replica {replica.image_id} of {source_id} is available in {replica.region}",
                    replica,
                    action=Action.COPIED,
                    evidence=evidence,
                    image_id=source_id,
                    region=source_region,
                )
            )
        else:
            work.findings.append(
                self._finding(
                    context,
                    FindingType.REPLICATION_FAILED,
                    Severity.HIGH,
                    f"DR replica {replica.image_id} of {source_id} failed in {replica.region}: {error_message or '?'}",
                    replica,
                    evidence=evidence | {"error_message": error_message},
                    image_id=source_id,
                    region=source_region,
                )
            )

    # --- approval removed ---------------------------------------------------------------------------------

    def _approval_removed(self, replication: ReplicationPort, image_id: str, context: _Context, work: _Work) -> None:
        image = replication.image(image_id)
        if image is None:
            work.notes.append(f"{image_id} is gone")
            return
        if is_replica(image) or is_approved(image.tags, self._settings.approval_tag):
            work.notes.append("still-approved" if not is_replica(image) else "is-replica")
            return
        rows = self._ledger.replicas(image.region, image.image_id)
        kept = {region: row.replica_id for region, row in rows.items() if row.status in LIVE_STATUSES}
        work.findings.append(
            self._finding(
                context,
                FindingType.APPROVAL_REMOVED,
                Severity.INFO,
                f"AMI {image.image_id} is no longer approved: no new DR copies; {len(kept)} existing replica(s) kept",
                image,
                evidence={"approval_tag": self._settings.approval_tag, "replicas_kept": kept},
            )
        )

    # --- source deregistered ------------------------------------------------------------------------------

    def _clean_up_replicas(self, region: str, image_id: str, context: _Context, work: _Work) -> None:
        rows = self._ledger.replicas(region, image_id)
        targets: dict[tuple[str, str], ReplicaRecord | None] = {}
        for record in rows.values():
            if record.replica_id and record.status in CLEANABLE_STATUSES:
                targets[(record.destination_region, record.replica_id)] = record
        done = {(r.destination_region, r.replica_id) for r in rows.values() if r.replica_id} - set(targets)
        for destination in sorted((set(self._settings.dr_regions) | set(rows)) - {region}):
            try:
                found = self._replication(destination).replicas_of(region, image_id)
            except ClientError as error:
                work.notes.append(f"{destination}: lookup failed ({error_code(error)})")
                work.retry_regions.append(destination)
                continue
            for replica in found:
                key = (destination, replica.image_id)
                if key not in done:
                    targets.setdefault(key, None)
        if not targets:
            work.notes.append("no-replicas")
            return
        cleanup = self._settings.replica_cleanup
        enforce = self._settings.enforcing and cleanup is not ReplicaCleanup.NONE
        cleaned: list[str] = []
        failed: dict[str, str] = {}
        for (destination, replica_id), row in sorted(targets.items()):
            if enforce:
                try:
                    self._clean_up_one(destination, replica_id, cleanup)
                except ClientError as error:
                    if not is_gone(error):
                        failed[f"{destination}/{replica_id}"] = error_code(error)
                        work.retry_regions.append(destination)
                        continue
                status = CLEANUP_STATUSES[cleanup]
                known = row or ReplicaRecord(
                    source_region=region,
                    source_image_id=image_id,
                    destination_region=destination,
                    status=status,
                    replica_id=replica_id,
                )
                self._ledger.put(known.model_copy(update={"status": status, "finished_at": self._clock()}))
            cleaned.append(f"{destination}/{replica_id}")
        if not cleaned:
            return
        if cleanup is ReplicaCleanup.NONE:
            verb, action = "kept (ReplicaCleanup is none)", Action.NONE
        elif enforce:
            verb, action = cleanup_verb(cleanup), CLEANUP_ACTIONS[cleanup]
        else:
            verb, action = f"kept (audit mode: would be {cleanup_verb(cleanup)})", Action.NONE
        work.findings.append(
            Finding(
                type=FindingType.REPLICA_CLEANUP,
                severity=Severity.INFO,
                summary=f"Source AMI {image_id} in {region} was deregistered: {len(cleaned)} DR replica(s) {verb}",
                account=context.account,
                region=region,
                image_id=image_id,
                actor=context.actor,
                event_id=context.event_id,
                event_time=context.event_time,
                action=action,
                evidence={"replicas": cleaned, "cleanup": cleanup.value, "failed": failed},
            )
        )

    def _clean_up_one(self, region: str, replica_id: str, cleanup: ReplicaCleanup) -> None:
        destination = self._replication(region)
        if cleanup is ReplicaCleanup.DEPRECATE:
            destination.deprecate(replica_id, deprecate_at(self._clock()))
        elif cleanup is ReplicaCleanup.DEREGISTER:
            destination.deregister(replica_id)

    # --- findings -----------------------------------------------------------------------------------------

    def _finding(
        self,
        context: _Context,
        type_: FindingType,
        severity: Severity,
        summary: str,
        image: Image,
        *,
        action: Action = Action.NONE,
        evidence: dict[str, Any] | None = None,
        image_id: str | None = None,
        region: str | None = None,
    ) -> Finding:
        return Finding(
            type=type_,
            severity=severity,
            summary=summary,
            account=context.account,
            region=region or image.region,
            image_id=image_id or image.image_id,
            image_name=image.name,
            actor=context.actor,
            event_id=context.event_id,
            event_time=context.event_time,
            action=action,
            evidence=evidence or {},
        )
