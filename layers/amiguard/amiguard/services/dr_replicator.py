"""dr_replicator: copy approved AMIs to the DR regions, encrypted and tagged, once, and track each copy.

Triggered by (successful calls only) CreateTags / DeleteTags on ``ami-*`` touching the approval tag,
CreateImage / CopyImage / RegisterImage carrying it in ``tagSpecificationSet``, DeregisterImage, and the
"EC2 AMI State Change" events ``available`` and ``failed`` (those of DR regions arrive forwarded to the
home region's bus with their own ``region``; see README). The event says where to look; DescribeImages
and the replica ledger decide. Each destination region is handled on its own: one failing never stops
the others. In ``audit`` mode nothing is copied or cleaned up; findings say ``would-copy``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

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
from amiguard.models.settings import ReplicaCleanup, Settings
from amiguard.policy.identity import OwnRoles
from amiguard.policy.replication import (
    BLOCKER_EXPLANATIONS,
    CLEANABLE_STATUSES,
    DEAD_REPLICA_STATES,
    LIVE_STATUSES,
    CopyPlan,
    CopyRequest,
    Readiness,
    ReplicaStanding,
    after_copy_error,
    approval_change,
    cleanup_outcome,
    copied_from,
    copy_request,
    deprecate_at,
    destination_regions,
    forged_replica_tag_verdict,
    is_approved,
    plan_copy,
    readiness,
    replica_of_value,
    replica_standing,
    replication_blocker,
    source_candidates,
)
from amiguard.policy.screening import (
    Drop,
    check_image_id,
    read_ami_state_change,
    read_cloudtrail,
    screen_cloudtrail,
)
from amiguard.services.cloudtrail import publish_findings, stage_findings
from amiguard.services.outcome import Measurement, Outcome, Status
from amiguard.services.ports import AlertsPort

EVENT_NAMES = frozenset({"CreateTags", "DeleteTags", "CreateImage", "CopyImage", "RegisterImage", "DeregisterImage"})
TRACKED_STATES = frozenset({"available", "failed"})
# With no ledger row, a CopyImage answer may be an earlier, dead copy (the row was lost): at most this many
# generations are tried in one invocation before the event is retried.
RECOVERY_GENERATIONS = 5
LATENCY_METRIC = "ReplicationSeconds"
CLEANUP_STATUSES = {
    ReplicaCleanup.DEPRECATE: ReplicaStatus.DEPRECATED,
    ReplicaCleanup.DEREGISTER: ReplicaStatus.DEREGISTERED,
}


class ReplicationPort(Protocol):
    region: str

    def images(self, image_ids: Iterable[str]) -> dict[str, Image]: ...
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
        event_id: str | None = None,
    ) -> ReplicaRecord | None: ...


ReplicationInRegion = Callable[[str], ReplicationPort]


class LedgerRecordedReplication:
    """The sweeper's replication calls (its remedies' port): EC2's, with each copy recorded in the replica ledger
    as dr_replicator records its own, so that the copy's state change is tracked and it is amiguard's to clean up.
    """

    def __init__(
        self,
        replication: ReplicationPort,
        ledger: ReplicaLedgerPort,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._replication = replication
        self._ledger = ledger
        self._clock = clock
        self.region = replication.region

    def copy_image(self, request: CopyRequest) -> str:
        """Copy (the request's generation decides the ClientToken), then record the copy as pending."""
        now = self._clock()
        row = self._ledger.replicas(request.source_region, request.source_image_id).get(request.destination_region)
        if row is not None and row.status in LIVE_STATUSES and row.generation < request.generation:
            gone = f"replica {row.replica_id} is gone (replaced by generation {request.generation})"
            self._ledger.put(
                row.model_copy(update={"status": ReplicaStatus.FAILED, "finished_at": now, "last_error": gone})
            )
        replica_id = self._replication.copy_image(request)
        self._ledger.claim(
            ReplicaRecord(
                source_region=request.source_region,
                source_image_id=request.source_image_id,
                destination_region=request.destination_region,
                status=ReplicaStatus.PENDING,
                replica_id=replica_id,
                started_at=now,
                kms_key_id=request.kms_key_id,
                client_token=request.client_token,
                generation=request.generation,
            )
        )
        return replica_id

    def deprecate(self, image_id: str, at: datetime) -> None:
        self._replication.deprecate(image_id, at)

    def deregister(self, image_id: str) -> None:
        self._replication.deregister(image_id)


class ReplicationRetry(RuntimeError):
    """A copy, lookup or cleanup failed transiently in some regions: raised so that Lambda retries the event."""


@dataclass
class _Context:
    """What every finding of one event carries."""

    account: str
    event_id: str | None
    event_time: datetime | None
    actor: str | None = None


@dataclass(frozen=True)
class _Recognition:
    """Whether an AMI is one of amiguard's replicas, and the ledger row that says so."""

    standing: ReplicaStanding
    record: ReplicaRecord | None = None

    @property
    def is_replica(self) -> bool:
        """Only a copy the ledger records is a replica (never copied as a source). An unrecorded copy, even one its
        tag and EC2 agree on, is an AMI like any other: a tag must not hide an approved copy from replication."""
        return self.standing is ReplicaStanding.RECORDED


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
                "EC2 failed transiently in "
                + ", ".join(sorted(set(self.retry_regions)))
                + f"; retrying the event ({'; '.join(self.notes) or 'no detail'})"
            )
        return outcome


class DrReplicator:
    """Copies approved AMIs to ``settings.dr_regions`` and keeps the replica ledger.

    Which AMI is a replica is the ledger's word (the copy amiguard made, by id) checked against EC2's
    ``SourceImageId``/``SourceImageRegion``; an ``amiguard:replica-of`` tag is a claim, never a fact.
    """

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
        if detail_type == AMI_STATE_CHANGE_DETAIL_TYPE:
            change = read_ami_state_change(raw_event)
            if isinstance(change, Drop):
                return Outcome.dropped(change, raw_event.get("id"))
            return self._on_state_change(change)
        if detail_type == CLOUDTRAIL_DETAIL_TYPE:
            call = read_cloudtrail(raw_event)
            if isinstance(call, Drop):
                return Outcome.dropped(call, raw_event.get("id"))
            return self._on_api_call(call)
        return Outcome.dropped(Drop("unhandled-event", f"detail-type {detail_type!r} is not handled here"))

    def publish(self, outcome: Outcome) -> None:
        publish_findings(self._alerts, outcome)

    # --- CloudTrail ---------------------------------------------------------------------------------------

    def _on_api_call(self, event: CloudTrailEvent) -> Outcome:
        record = event.detail
        event_id = record.event_id or event.id
        own = OwnRoles.of(self._settings.own_role_arns, organization=self._settings.organization)
        if drop := screen_cloudtrail(event, expected_names=EVENT_NAMES, own=own):
            return Outcome.dropped(drop, event_id)
        context = _Context(event.account_id or "", event_id, event.occurred_at, record.actor)
        region = record.aws_region
        if record.event_name == "DeregisterImage":
            raw_id = record.params.get("imageId")
            if drop := check_image_id(raw_id):
                return Outcome.dropped(drop, event_id)
            image_id = str(raw_id)
            return self._guarded(lambda work: self._clean_up_replicas(region, image_id, context, work), context)
        if not self._settings.dr_regions:
            return Outcome.dropped(Drop("replication-off", "AMIGUARD_DR_REGIONS is empty"), event_id)
        change = approval_change(record.event_name, record.params, record.response, self._settings.approval_tag)
        if change.empty:
            detail = f"{record.event_name} does not set or remove {self._settings.approval_tag!r} on an AMI"
            if change.ignored:
                detail += f" (malformed ids ignored: {', '.join(change.ignored)})"
            return Outcome.dropped(Drop("no-approval-change", detail), event_id)

        def act(work: _Work) -> None:
            # One batched DescribeImages for every distinct id the call named (approval_change de-duplicates).
            images = self._replication(region).images([*change.granted, *change.removed])
            for image_id in change.granted:
                image = images.get(image_id)
                if image is None:
                    work.notes.append(f"{image_id} is gone")
                    continue
                self._replicate(image, context, work)
            for image_id in change.removed:
                image = images.get(image_id)
                if image is None:
                    work.notes.append(f"{image_id} is gone")
                    continue
                self._approval_removed(image, context, work)

        return self._guarded(act, context)

    # --- EC2 AMI State Change -----------------------------------------------------------------------------

    def _on_state_change(self, event: AmiStateChangeEvent) -> Outcome:
        event_id = event.id
        region, account, detail = event.region or "", event.account or "", event.detail
        if detail.state not in TRACKED_STATES:
            return Outcome.dropped(Drop("untracked-state", f"{detail.image_id} is {detail.state}"), event_id)
        context = _Context(account, event_id, event.time)

        def act(work: _Work) -> None:
            image = self._replication(region).images([detail.image_id]).get(detail.image_id)
            if image is None:
                work.notes.append("image-gone")
                return
            recognition = self._recognise(image, context, work)
            if recognition.record is not None:
                if image.state not in TRACKED_STATES:  # the event is older than what EC2 says now
                    work.notes.append(f"replica-{image.state}")
                    return
                error = detail.error_message if image.state == detail.state else None
                self._track_replica(image, recognition.record, image.state, error, context, work)
            elif not is_approved(image.tags, self._settings.approval_tag):
                work.notes.append("not-approved")
            elif self._settings.dr_regions:
                self._replicate(image, context, work, recognition)
            else:
                work.notes.append("replication-off")

        return self._guarded(act, context)

    def _guarded(self, act: Callable[[_Work], None], context: _Context) -> Outcome:
        work = _Work()
        try:
            act(work)
        except ClientError as error:
            if not is_gone(error):
                raise  # transient or unexpected: Lambda retries, then the dead-letter queue keeps it
            return Outcome.dropped(Drop("resource-gone", str(error)), context.event_id)
        outcome = work.outcome(context.event_id)
        # With the event's time its outbox rows can be found: a retry alerts what an earlier attempt staged.
        outcome.event_time = context.event_time
        return outcome

    # --- which AMI is a replica ---------------------------------------------------------------------------

    def _recognise(self, image: Image, context: _Context, work: _Work) -> _Recognition:
        """Ask the ledger about the sources EC2 and the tag name; a tag nothing backs is a finding."""
        for source_region, source_id in source_candidates(image):
            row = self._ledger.replicas(source_region, source_id).get(image.region)
            if row is not None and row.replica_id == image.image_id:
                return _Recognition(ReplicaStanding.RECORDED, row)
        standing = replica_standing(image, recorded=False)
        if standing is ReplicaStanding.FORGED:
            work.findings.append(self._forged(context, image))
        return _Recognition(standing)

    def _forged(self, context: _Context, image: Image, *, about: str | None = None) -> Finding:
        verdict = forged_replica_tag_verdict(image, about)
        return self._finding(context, verdict.type, verdict.severity, verdict.summary, image, evidence=verdict.evidence)

    # --- replicate ----------------------------------------------------------------------------------------

    def _replicate(self, image: Image, context: _Context, work: _Work, recognition: _Recognition | None = None) -> None:
        """Copy an approved source to every DR region that has no live replica yet."""
        recognition = recognition or self._recognise(image, context, work)
        if recognition.is_replica:
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
        now = self._clock()
        todo: list[tuple[str, CopyPlan]] = []
        for region in destinations:
            row = rows.get(region)
            try:
                replica = self._recorded_replica(region, row)
            except ClientError as error:
                # A lookup failed: isolate the region, retry the event.
                work.notes.append(f"{region}: {error_code(error)}")
                work.retry_regions.append(region)
                continue
            plan = plan_copy(row, replica, now)
            if plan.copy:
                todo.append((region, plan))
            elif row and replica and replica.state == "available" and (
                row.status is ReplicaStatus.PENDING
                or (row.status is ReplicaStatus.AVAILABLE and row.finished_by == context.event_id)
            ):
                # Its state change was missed (or came before the row was written): finish it now. Or this very
                # event finished it in an attempt that then failed: report it again (its alert may not be out).
                self._track_replica(replica, row, "available", None, context, work)
        if not todo and not work.retry_regions:
            work.notes.append("already-replicated")
            return
        for region, plan in todo:
            try:
                self._replicate_to(image, region, rows.get(region), plan, context, work)
            except ClientError as error:
                # Not CopyImage's (handled inside): a lookup failed. Isolate the region, retry the event.
                work.notes.append(f"{region}: {error_code(error)}")
                work.retry_regions.append(region)

    def _recorded_replica(self, region: str, row: ReplicaRecord | None) -> Image | None:
        """What EC2 says of the copy a live row records (``None``: no such row, or the copy is not found)."""
        if row is None or row.replica_id is None or row.status not in LIVE_STATUSES:
            return None
        return self._replication(region).images([row.replica_id]).get(row.replica_id)

    def _replicate_to(
        self,
        image: Image,
        region: str,
        row: ReplicaRecord | None,
        plan: CopyPlan,
        context: _Context,
        work: _Work,
    ) -> None:
        destination = self._replication(region)
        now = self._clock()
        generation = plan.generation

        def record(status: ReplicaStatus, request: CopyRequest) -> ReplicaRecord:
            return ReplicaRecord(
                source_region=image.region,
                source_image_id=image.image_id,
                destination_region=region,
                status=status,
                started_at=now,
                kms_key_id=request.kms_key_id,
                client_token=request.client_token,
                generation=request.generation,
            )

        request = self._request(image, region, generation)
        if not self._settings.enforcing:
            if self._ledger.replace_if(
                record(ReplicaStatus.WOULD_COPY, request), unless_status=ReplicaStatus.WOULD_COPY
            ):
                work.findings.append(self._started(context, image, region, None, request, Action.WOULD_COPY, plan))
            return
        if plan.replaces and row is not None and row.status in LIVE_STATUSES:
            # The ledger still calls the dead copy live: say what became of it, so the new copy can be claimed.
            gone = f"replica {plan.replaces} is gone from {region} (failed or deregistered outside amiguard)"
            self._ledger.put(
                row.model_copy(update={"status": ReplicaStatus.FAILED, "finished_at": now, "last_error": gone})
            )
            work.notes.append(f"{region}: {plan.replaces} is gone")
        for _ in range(RECOVERY_GENERATIONS):
            request = self._request(image, region, generation)
            try:
                replica_id = destination.copy_image(request)
            except ClientError as error:
                self._copy_failed(image, region, row, record(ReplicaStatus.FAILED, request), error, context, work)
                return
            if row is not None:
                break  # the ledger knew every earlier generation: this token has never been used
            # No row (lost, or made before the ledger): the token may be an earlier copy's. EC2 says if it lives.
            found = destination.images([replica_id]).get(replica_id)
            if found is None or found.state not in DEAD_REPLICA_STATES:
                break  # new, or an earlier live copy: recorded pending either way (a later look finishes it)
            work.notes.append(f"{region}: {replica_id} of generation {generation} is {found.state}")
            generation += 1
        else:
            work.notes.append(f"{region}: {RECOVERY_GENERATIONS} dead copies in a row; retrying the event")
            work.retry_regions.append(region)
            return
        claimed = record(ReplicaStatus.PENDING, request).model_copy(update={"replica_id": replica_id})
        started = self._started(context, image, region, replica_id, request, Action.COPIED, plan)
        # Staged before the claim: once the row is written a retry finds the copy recorded and alerts nothing, so
        # an attempt whose claim's answer was lost (or that failed to alert) leaves its alert in the outbox.
        stage_findings(self._alerts, [started])
        if not self._ledger.claim(claimed):
            work.notes.append(f"{region}: another invocation recorded the copy")
        else:
            work.findings.append(started)

    def _request(self, image: Image, region: str, generation: int) -> CopyRequest:
        return copy_request(
            image,
            region,
            self._settings.dr_kms_keys,
            approval_tag=self._settings.approval_tag,
            generation=generation,
        )

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
        plan: CopyPlan,
    ) -> Finding:
        verb = "Copying" if action is Action.COPIED else "Would copy"
        key = request.kms_key_id or "the region's default EBS key"
        replacing = f", replacing {plan.replaces} (failed or deregistered)" if plan.replaces else ""
        return self._finding(
            context,
            FindingType.REPLICATION_STARTED,
            Severity.INFO,
            f"{verb} approved AMI {image.image_id} to {region}, encrypted with {key}{replacing}",
            image,
            action=action,
            evidence={
                "destination_region": region,
                "replica_id": replica_id,
                "client_token": request.client_token,
                "kms_key_id": request.kms_key_id,
                "generation": request.generation,
                "replaces": plan.replaces,
            },
        )

    # --- completion ---------------------------------------------------------------------------------------

    def _track_replica(
        self,
        replica: Image,
        row: ReplicaRecord,
        state: str,
        error_message: str | None,
        context: _Context,
        work: _Work,
    ) -> None:
        source_region, source_id = row.source_region, row.source_image_id
        status = ReplicaStatus.AVAILABLE if state == "available" else ReplicaStatus.FAILED
        record = self._ledger.finish(
            source_region,
            source_id,
            replica.region,
            replica_id=replica.image_id,
            status=status,
            finished_at=self._clock(),
            error=error_message or None,
            event_id=context.event_id,  # a retry of this event reports the completion its first attempt recorded
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
            if latency is not None and row.status is ReplicaStatus.PENDING:  # measured once, not per retry
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
                    f"DR replica {replica.image_id} of {source_id} failed in {replica.region}: "
                    f"{error_message or '?'}; the next approval or sweep makes a new copy",
                    replica,
                    evidence=evidence | {"error_message": error_message},
                    image_id=source_id,
                    region=source_region,
                )
            )

    # --- approval removed ---------------------------------------------------------------------------------

    def _approval_removed(self, image: Image, context: _Context, work: _Work) -> None:
        if is_approved(image.tags, self._settings.approval_tag):
            work.notes.append("still-approved")
            return
        if self._recognise(image, context, work).is_replica:
            work.notes.append("is-replica")
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
        """Apply ReplicaCleanup to the replicas the ledger says amiguard made of a source that is really gone.

        The event only says where to look: a DeregisterImage record can be replayed by anyone allowed to
        invoke the function, and an AMI restored from the Recycle Bin keeps its id. So the source is looked
        up first, and each replica must be the ledger's copy, still there, and (where EC2 says) copied from
        this source. Images merely *tagged* as its replicas are reported, never touched.
        """
        source = self._replication(region).images([image_id]).get(image_id)
        if source is not None and source.state != "deregistered":
            work.notes.append(f"source-exists: {image_id} is {source.state} in {region}, replicas kept")
            return
        rows = self._ledger.replicas(region, image_id)
        recorded = {
            dest: row
            for dest, row in rows.items()
            if row.replica_id and row.status in CLEANABLE_STATUSES and dest != region
        }
        targets: list[tuple[str, ReplicaRecord]] = []
        for destination in sorted((set(self._settings.dr_regions) | set(rows)) - {region}):
            try:
                targets.extend(
                    self._verified_targets(region, image_id, destination, recorded.get(destination), context, work)
                )
            except ClientError as error:
                work.notes.append(f"{destination}: lookup failed ({error_code(error)})")
                work.retry_regions.append(destination)
        if not targets:
            work.notes.append("no-replicas")
            return
        cleanup = self._settings.replica_cleanup
        enforce = self._settings.enforcing and cleanup is not ReplicaCleanup.NONE
        cleaned: list[str] = []
        failed: dict[str, str] = {}
        for destination, row in targets:
            replica_id = row.replica_id or ""
            if enforce:
                try:
                    self._clean_up_one(destination, replica_id, cleanup)
                except ClientError as error:
                    if not is_gone(error):
                        failed[f"{destination}/{replica_id}"] = error_code(error)
                        work.retry_regions.append(destination)
                        continue
                status = CLEANUP_STATUSES[cleanup]
                self._ledger.put(row.model_copy(update={"status": status, "finished_at": self._clock()}))
            cleaned.append(f"{destination}/{replica_id}")
        if not cleaned:
            return
        verb, action = cleanup_outcome(cleanup, enforcing=self._settings.enforcing)
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

    def _verified_targets(
        self,
        source_region: str,
        source_id: str,
        destination: str,
        row: ReplicaRecord | None,
        context: _Context,
        work: _Work,
    ) -> list[tuple[str, ReplicaRecord]]:
        """The ledger's replica in ``destination`` if EC2 confirms it; images only tagged as replicas: findings."""
        replication = self._replication(destination)
        targets: list[tuple[str, ReplicaRecord]] = []
        if row is not None and row.replica_id:
            replica = replication.images([row.replica_id]).get(row.replica_id)
            origin = copied_from(replica) if replica else None
            if replica is None or replica.state == "deregistered":
                work.notes.append(f"{destination}: {row.replica_id} is already gone")
            elif replica.owner_id != context.account or (origin is not None and origin != (source_region, source_id)):
                work.notes.append(f"{destination}: {row.replica_id} is not a copy of {source_id} (EC2), kept")
            else:
                targets.append((destination, row))
        recorded = row.replica_id if row else None
        for tagged in replication.replicas_of(source_region, source_id):
            if tagged.image_id != recorded:
                work.findings.append(self._forged(context, tagged, about="it is not cleaned up"))
        return targets

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
