"""tag_enforcer: every new AMI answers "whose is it, what is it for, who pays".

Triggered by CreateImage, CopyImage and RegisterImage (a new AMI, tagged while still ``pending``; an unencrypted
or legacy-platform one is reported too, :mod:`amiguard.policy.hygiene`), by
CreateTags / DeleteTags naming ``ami-*`` ids (re-evaluation), by "EC2 AMI State Change" to ``available``
(snapshots EC2 had not yet listed on the pending AMI get their tags), and by an hourly schedule (the
escalation sweep, in every region the account has enabled). Current tags (DescribeImages) decide;
:mod:`amiguard.policy.tagging` says what to write. In ``audit`` mode nothing is written and nothing
escalates: findings say ``would-tag``.

When a violation starts and what amiguard marked are amiguard's own record (the ledger,
:mod:`amiguard.aws.violations`), written before the ``amiguard:violation*`` tags that mirror it: a tag
anyone can write never starts, shortens or hides a grace period. A tag that disagrees with the record is a
``forged-amiguard-tag`` finding and is rewritten from the record.

Duplicate events change nothing and alert nothing: the record and the tags already tell the truth, so the
second evaluation is ``unchanged``. amiguard's own CreateTags / DeleteTags never reach this far (screening
drops its own calls).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from amiguard.aws.errors import error_code, is_gone
from amiguard.models.events import (
    AMI_STATE_CHANGE_DETAIL_TYPE,
    SCHEDULED_EVENT_DETAIL_TYPE,
    CloudTrailEvent,
    CloudTrailRecord,
    ScheduledEvent,
)
from amiguard.models.findings import Action, Finding, FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.settings import IMAGE_ID, REGION, Settings, TagEscalation, TagRule
from amiguard.policy.hygiene import legacy_platform_verdict, unencrypted_verdict
from amiguard.policy.identity import OwnRoles
from amiguard.policy.replication import CREATION_EVENTS, TAG_EVENTS
from amiguard.policy.screening import Drop, check_image_id, read_ami_state_change, read_schedule
from amiguard.policy.sharing import Verdict
from amiguard.policy.tagging import (
    CREATED_BY,
    ESCALATION_ACTIONS,
    ESCALATION_BLOCKED,
    INSTANCE_ID,
    SETTLED_BAD,
    VIOLATION,
    VIOLATION_KEYS,
    Provenance,
    RecordChange,
    Step,
    TagEvaluation,
    Transition,
    ViolationChange,
    ViolationRecord,
    decide_escalation,
    deprecation_time,
    escalated_verdict,
    evaluate_required_tags,
    forged_tag_verdict,
    inherited_tags,
    iso,
    keys_to_inherit,
    missing_keys,
    provenance_tags,
    read_tag_call,
    snapshot_tags,
    tag_violation_verdict,
    touches_policy,
    violation_change,
)
from amiguard.services.cloudtrail import handle_cloudtrail, publish_findings, stage_findings
from amiguard.services.outcome import Outcome, Status
from amiguard.services.ports import AlertsPort, TaggingInRegion, TaggingPort, ViolationLedgerPort

EVENT_NAMES = CREATION_EVENTS | TAG_EVENTS


class EscalationSweepIncomplete(RuntimeError):
    """Some region could not be swept: raised after the others' findings went out, so Lambda retries."""


class _Writes:
    """Tag writes grouped by identical tag set, so that one CreateTags call serves many resources."""

    def __init__(self) -> None:
        self.add: dict[tuple[tuple[str, str], ...], list[str]] = defaultdict(list)
        self.remove: dict[tuple[str, ...], list[str]] = defaultdict(list)

    def set(self, resource_ids: tuple[str, ...] | list[str], tags: Mapping[str, str]) -> None:
        if tags and resource_ids:
            self.add[tuple(sorted(tags.items()))].extend(resource_ids)

    def delete(self, resource_id: str, keys: tuple[str, ...]) -> None:
        if keys:
            self.remove[tuple(sorted(keys))].append(resource_id)

    def apply(self, tagging: TaggingPort) -> int:
        calls = 0
        for tags, resources in self.add.items():
            calls += tagging.add_tags(resources, dict(tags))
        for keys, resources in self.remove.items():
            calls += tagging.remove_tags(resources, keys)
        return calls

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


class TagEnforcer:
    """Auto-tags new AMIs, evaluates required tags, marks and clears violations, escalates overdue ones."""

    def __init__(
        self,
        *,
        settings: Settings,
        tagging: TaggingInRegion,
        violations: ViolationLedgerPort,
        alerts: AlertsPort,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        regions: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        self._settings = settings
        self._own = OwnRoles.of(settings.own_role_arns, organization=settings.organization)
        self._tagging = tagging
        self._violations = violations
        self._alerts = alerts
        # The escalation sweep's regions, from the function's own (every enabled one); None: that one only.
        self._regions = regions
        self._clock = clock
        self._rules: Mapping[str, TagRule] = settings.required_tags
        self._inherit_keys = keys_to_inherit(settings.required_tags, settings.inherit_tags)

    # --- entry ------------------------------------------------------------------------------------------

    def handle(self, raw_event: dict[str, Any]) -> Outcome:
        """Screen, parse and act on one EventBridge event (CloudTrail call or schedule)."""
        if isinstance(raw_event, dict) and raw_event.get("detail-type") == SCHEDULED_EVENT_DETAIL_TYPE:
            return self._sweep(raw_event)
        if isinstance(raw_event, dict) and raw_event.get("detail-type") == AMI_STATE_CHANGE_DETAIL_TYPE:
            return self._on_available(raw_event)
        return handle_cloudtrail(raw_event, expected_names=EVENT_NAMES, own=self._own, act=self._act)

    def publish(self, outcome: Outcome) -> None:
        publish_findings(self._alerts, outcome)

    def _act(self, event: CloudTrailEvent) -> Outcome:
        tagging = self._tagging(event.detail.aws_region)
        if event.detail.event_name in CREATION_EVENTS:
            return self._on_new_image(event, tagging)
        return self._on_tag_change(event, tagging)

    # --- the record -------------------------------------------------------------------------------------

    def _record(
        self,
        account: str,
        image: Image,
        tags: Mapping[str, str],
        evaluation: TagEvaluation,
        change: ViolationChange,
        *,
        new_image: bool = False,
    ) -> tuple[ViolationChange, ViolationRecord | None]:
        """Write a new or changed violation to the record (enforce mode), before any tag mirrors it.

        Returns the change to apply and the record behind it: when another invocation recorded the violation
        first, its start holds and the change is decided again from it.
        """
        if not self._settings.enforcing or change.violation is None or change.since is None:
            return change, None
        if change.record is RecordChange.CREATE:
            held = self._violations.record(account, image.region, image.image_id, change.violation, change.since)
            if held.since != change.since or held.violation != change.violation:
                again = violation_change(tags, evaluation, self._clock(), held, new_image=new_image)
                return again, held
            return change, held
        if change.record is RecordChange.UPDATE:
            self._violations.update(account, image.region, image.image_id, change.violation)
        return change, ViolationRecord(change.since, change.violation)

    # --- a new AMI --------------------------------------------------------------------------------------

    def _on_new_image(self, event: CloudTrailEvent, tagging: TaggingPort) -> Outcome:
        record = event.detail
        image_id = record.response.get("imageId")
        if (drop := check_image_id(image_id)) or not isinstance(image_id, str):
            reason = drop.reason if drop else "malformed-event"
            return Outcome.dropped(Drop(reason, f"responseElements.imageId: {drop.detail if drop else image_id}"))
        image = tagging.owned_image(image_id)
        if image is None:
            return Outcome.dropped(Drop("not-owned", f"{image_id} is not owned by this account"))
        if image.state in SETTLED_BAD:
            return Outcome.clean("image-unusable", f"{image_id} is {image.state}: nothing to tag")

        account = event.account_id or image.owner_id
        recorded = self._violations.records(account, image.region, [image.image_id]).get(image.image_id)
        provenance, notes = self._provenance(record, image)
        current = dict(image.tags)
        if recorded is None and any(key in current for key in VIOLATION_KEYS):
            notes.append("violation tags the AMI was created with (or copied from its source) were replaced")
        auto = provenance_tags(current, provenance)
        inherited: dict[str, str] = {}
        needed = missing_keys(current, self._inherit_keys)
        if needed:
            source, note = self._source_tags(record, provenance)
            if note:
                notes.append(note)
            inherited = inherited_tags(current, source, needed)
        tags = current | auto | inherited
        evaluation = evaluate_required_tags(tags, self._rules)
        change = violation_change(tags, evaluation, self._clock(), recorded, new_image=True)
        change, held = self._record(account, image, tags, evaluation, change, new_image=True)

        writes = _Writes()
        writes.set([image.image_id], auto | inherited | dict(change.add))
        writes.delete(image.image_id, change.remove)
        writes.set(list(image.snapshot_ids), snapshot_tags(tags, self._inherit_keys))
        marked = image.model_copy(update={"tags": tags})
        findings = self._findings_for(
            event, marked, evaluation, change, held or recorded, inherited=inherited, notes=notes
        )
        # What the new AMI is made of, from the same DescribeImages: reported, never acted on (a human re-builds it).
        for verdict in (unencrypted_verdict(image), legacy_platform_verdict(image)):
            if verdict is not None:
                finding = self._finding(verdict, image, account, actor=record.actor, action=Action.NONE, event=event)
                findings.append(finding)
        # Staged before tagging: a retry finds the violation already marked and would not alert on its own.
        stage_findings(self._alerts, findings)
        if self._settings.enforcing:
            writes.apply(tagging)
            if change.record is RecordChange.DELETE:
                self._violations.clear(account, image.region, image.image_id)

        detail = self._written(auto, inherited, image)
        if notes:
            detail += "; " + "; ".join(notes)
        if not findings:
            return Outcome.clean("compliant", detail)
        return Outcome(Status.ACTED, findings[0].type.value, detail, findings=findings)

    def _provenance(self, record: CloudTrailRecord, image: Image) -> tuple[Provenance, list[str]]:
        notes: list[str] = []
        created_by = record.actor
        if not created_by:
            notes.append("the event names no principal: amiguard:created-by not written")
        params = record.params
        if record.event_name == "CreateImage":
            instance = params.get("instanceId")
            valid = isinstance(instance, str) and INSTANCE_ID.match(instance)
            return Provenance(created_by, source_instance=instance if valid else None), notes
        if record.event_name == "CopyImage":
            source_image = params.get("sourceImageId")
            source_region = params.get("sourceRegion")
            if not (isinstance(source_image, str) and IMAGE_ID.match(source_image)):
                source_image = image.source_image_id
            if not (isinstance(source_region, str) and REGION.match(source_region)):
                source_region = image.source_region
            return Provenance(created_by, source_image=source_image, source_region=source_region), notes
        return Provenance(created_by), notes

    def _source_tags(self, record: CloudTrailRecord, provenance: Provenance) -> tuple[dict[str, str], str | None]:
        """Tags of the instance (CreateImage) or source AMI in its own region (CopyImage) to inherit from."""
        if provenance.source_instance:
            tags = self._tagging(record.aws_region).instance_tags(provenance.source_instance)
            if tags is None:
                return {}, f"source instance {provenance.source_instance} no longer exists: nothing inherited"
            return tags, None
        if provenance.source_image and provenance.source_region:
            source = self._tagging(provenance.source_region).any_image(provenance.source_image)
            if source is None:
                where = f"{provenance.source_region}/{provenance.source_image}"
                return {}, f"source image {where} is gone: nothing inherited"
            return source.tags, None
        return {}, None

    # --- "EC2 AMI State Change": available ---------------------------------------------------------------

    def _on_available(self, raw_event: dict[str, Any]) -> Outcome:
        """Tag snapshots that were not yet listed on the pending AMI (only what they lack: duplicates write nothing)."""
        event = read_ami_state_change(raw_event)
        if isinstance(event, Drop):
            return Outcome.dropped(event, raw_event.get("id"))
        detail = event.detail
        region = event.region or ""
        if detail.state != "available":
            return Outcome.dropped(Drop("unhandled-event", f"{detail.image_id} is {detail.state}"), event.id)
        if not self._settings.enforcing:
            return Outcome.clean("audit-mode", "audit mode: snapshots are not tagged", event.id)
        tagging = self._tagging(region)
        try:
            image = tagging.owned_image(detail.image_id)
        except ClientError as error:
            if not is_gone(error):
                raise
            return Outcome.dropped(Drop("resource-gone", str(error)), event.id)
        if image is None:
            return Outcome.dropped(Drop("not-owned", f"{detail.image_id} is not owned by this account"), event.id)
        wanted = snapshot_tags(image.tags, self._inherit_keys)
        if not wanted or not image.snapshot_ids:
            return Outcome.clean("nothing-to-copy", f"{image.image_id}: no required tags or no snapshots", event.id)
        writes = _Writes()
        for snapshot_id, tags in tagging.snapshot_tags(image.snapshot_ids).items():
            writes.set([snapshot_id], {key: value for key, value in wanted.items() if tags.get(key) != value})
        writes.apply(tagging)
        tagged = sum(len(resources) for resources in writes.add.values())
        return Outcome.clean("snapshots-tagged", f"{tagged} snapshot(s) of {image.image_id} tagged", event.id)

    # --- CreateTags / DeleteTags ------------------------------------------------------------------------

    def _on_tag_change(self, event: CloudTrailEvent, tagging: TaggingPort) -> Outcome:
        record = event.detail
        call = read_tag_call(record.params, image_id_pattern=IMAGE_ID)
        if call.malformed:
            return Outcome.dropped(Drop("malformed-event", call.malformed))
        if not call.image_ids:
            return Outcome.dropped(
                Drop("no-image-resources", f"none of the {call.resource_count} tagged resources is an AMI")
            )
        if not touches_policy(call.keys, self._rules, self._inherit_keys):
            keys = ", ".join(call.keys or ())
            return Outcome.dropped(Drop("irrelevant-tags", f"{record.event_name} of {keys} cannot change compliance"))
        images = [image for image in tagging.owned_images(call.image_ids) if image.state not in SETTLED_BAD]
        if not images:
            return Outcome.dropped(
                Drop("not-owned", f"none of the {len(call.image_ids)} AMIs is owned by this account and still exists")
            )

        now = self._clock()
        writes = _Writes()
        findings: list[Finding] = []
        clears: list[Image] = []
        by_account: dict[str, list[Image]] = defaultdict(list)
        for image in images:
            by_account[event.account_id or image.owner_id].append(image)
        for account, owned in by_account.items():
            region = owned[0].region
            records = self._violations.records(account, region, [image.image_id for image in owned])
            for image in owned:
                evaluation = evaluate_required_tags(image.tags, self._rules)
                recorded = records.get(image.image_id)
                change = violation_change(image.tags, evaluation, now, recorded)
                change, held = self._record(account, image, image.tags, evaluation, change)
                writes.set([image.image_id], change.add)
                writes.delete(image.image_id, change.remove)
                if change.record is RecordChange.DELETE:
                    clears.append(image)
                if record.event_name == "CreateTags" and call.keys:
                    # the owner's fix reaches the storage too: copy the keys just set onto the snapshots
                    changed = [key for key in call.keys if key in self._inherit_keys]
                    writes.set(list(image.snapshot_ids), snapshot_tags(image.tags, changed))
                findings.extend(self._findings_for(event, image, evaluation, change, held or recorded))
        stage_findings(self._alerts, findings)  # before tagging: a retry would find nothing left to alert
        if self._settings.enforcing:
            if writes:
                writes.apply(tagging)
            for image in clears:  # after the tags: a record never goes before the tags that mirror it
                self._violations.clear(event.account_id or image.owner_id, image.region, image.image_id)
        detail = f"{len(images)} AMI(s) evaluated of {call.resource_count} resources"
        if not findings:
            return Outcome.clean("unchanged", detail)
        return Outcome(Status.ACTED, "re-evaluated", detail, findings=findings)

    # --- escalation sweep -------------------------------------------------------------------------------

    def _sweep(self, raw_event: dict[str, Any]) -> Outcome:
        event = read_schedule(raw_event)
        if isinstance(event, Drop):
            return Outcome.dropped(event, raw_event.get("id"))
        if not self._settings.enforcing:
            return Outcome.clean("audit-mode", "audit mode: violations are reported, never escalated", event.id)
        region, account = event.region or "", event.account or ""
        if not REGION.match(region):
            return Outcome.dropped(Drop("malformed-event", f"region {region!r} is not an AWS region"), event.id)
        now = self._clock()
        findings: list[Finding] = []
        waiting = 0
        failed: list[str] = []
        for swept in self._regions(region) if self._regions else [region]:
            try:
                waiting += self._sweep_region(swept, account, event, now, findings)
            except ClientError as error:
                # The other regions are still swept; what this one did before failing is still alerted.
                failed.append(f"{swept} ({error_code(error) or error})")
        detail = f"{len(findings)} finding(s), {waiting} AMI(s) within grace or already escalated"
        outcome = (
            Outcome(Status.ACTED, "swept", detail, findings=findings) if findings else Outcome.clean("swept", detail)
        )
        outcome.event_id = event.id
        if failed:
            outcome.retry_error = EscalationSweepIncomplete("escalation sweep failed in " + ", ".join(failed))
        return outcome

    def _sweep_region(
        self, region: str, account: str, event: ScheduledEvent, now: datetime, findings: list[Finding]
    ) -> int:
        """One region's AMIs in violation (findings appended); returns how many wait (within grace, or escalated).

        What amiguard recorded decides; AMIs tagged as in violation without a record are looked at too (their
        tags are forged, or a violation amiguard never marked: recorded now, alerted, not escalated)."""
        tagging = self._tagging(region)
        records = self._violations.in_region(account, region)
        images = {image.image_id: image for image in tagging.images_in_violation()}
        untagged = [image_id for image_id in records if image_id not in images]
        if untagged:
            images.update((image.image_id, image) for image in tagging.owned_images(untagged))
        for image_id in untagged:
            if image_id not in images or images[image_id].state in SETTLED_BAD:
                self._violations.clear(account, region, image_id)  # deregistered: nothing left to enforce
        waiting = 0
        for image in sorted(images.values(), key=lambda image: image.image_id):
            if image.state in SETTLED_BAD:
                continue
            escalated, waited = self._sweep_image(tagging, account, image, records.get(image.image_id), now, event)
            findings.extend(escalated)
            waiting += waited
        return waiting

    def _sweep_image(
        self,
        tagging: TaggingPort,
        account: str,
        image: Image,
        recorded: ViolationRecord | None,
        now: datetime,
        event: ScheduledEvent,
    ) -> tuple[list[Finding], int]:
        """One AMI of the sweep: findings, and 1 when it waits (within grace, or already escalated)."""
        evaluation = evaluate_required_tags(image.tags, self._rules)
        change = violation_change(image.tags, evaluation, now, recorded)
        change, held = self._record(account, image, image.tags, evaluation, change)
        if change.add:
            tagging.add_tags([image.image_id], change.add)
        if change.remove:
            tagging.remove_tags([image.image_id], change.remove)
        if change.record is RecordChange.DELETE:
            self._violations.clear(account, image.region, image.image_id)
        # a missed event (or a policy change): a new violation is marked and alerted, a fixed one resolved
        findings = self._findings_for(None, image, evaluation, change, held or recorded, account=account)
        escalation = self._settings.tag_escalation
        if evaluation.compliant or escalation is TagEscalation.NONE or held is None:
            return findings, 0
        grace = self._settings.tag_grace_hours
        decision = decide_escalation(image, since=held.since, escalation=escalation, grace_hours=grace, now=now)
        if decision.step is Step.DEREGISTER:
            in_use = tagging.instances_using(image.image_id)
            decision = decide_escalation(
                image, since=held.since, escalation=escalation, grace_hours=grace, now=now, instances_in_use=in_use
            )
        if decision.step in {Step.WAIT, Step.DONE}:
            return findings, 1
        if decision.step is Step.BLOCKED:
            if image.tags.get(ESCALATION_BLOCKED) == decision.reason[:256]:
                return findings, 0  # already alerted
            tagging.add_tags([image.image_id], {ESCALATION_BLOCKED: decision.reason[:256]})
        elif decision.step is Step.DEPRECATE:
            tagging.deprecate(image.image_id, deprecation_time(now))
        elif decision.step is Step.DISABLE:
            tagging.disable(image.image_id)
        elif decision.step is Step.DEREGISTER:
            tagging.deregister(image.image_id)
        done = "done by tag_enforcer's hourly sweep"
        verdict = escalated_verdict(image, decision.step, decision.reason, held, self._settings, acted_by=done)
        action = ESCALATION_ACTIONS.get(decision.step, Action.NONE)
        findings.append(
            self._finding(verdict, image, account, actor=image.tags.get(CREATED_BY), action=action).model_copy(
                update={"event_id": event.id, "event_time": event.time}
            )
        )
        return findings, 0

    # --- findings ---------------------------------------------------------------------------------------

    def _written(self, auto: Mapping[str, str], inherited: Mapping[str, str], image: Image) -> str:
        parts = []
        if auto:
            parts.append("auto-tagged " + ", ".join(sorted(auto)))
        if inherited:
            parts.append("inherited " + ", ".join(sorted(inherited)))
        if image.snapshot_ids:
            parts.append(f"{len(image.snapshot_ids)} snapshot(s) tagged")
        verb = "" if self._settings.enforcing else "would have: "
        return verb + ("; ".join(parts) if parts else "nothing to write")

    @property
    def _tag_action(self) -> Action:
        return Action.TAGGED if self._settings.enforcing else Action.WOULD_TAG

    def _finding(
        self,
        verdict: Verdict,
        image: Image,
        account: str,
        *,
        actor: str | None,
        action: Action,
        event: CloudTrailEvent | None = None,
    ) -> Finding:
        return Finding(
            type=verdict.type,
            severity=verdict.severity,
            summary=verdict.summary,
            account=account,
            region=image.region,
            image_id=image.image_id,
            image_name=image.name,
            actor=actor,
            event_id=(event.detail.event_id or event.id) if event else None,
            event_time=event.occurred_at if event else None,
            action=action,
            evidence=verdict.evidence,
        )

    def _findings_for(
        self,
        event: CloudTrailEvent | None,
        image: Image,
        evaluation: TagEvaluation,
        change: ViolationChange,
        recorded: ViolationRecord | None,
        *,
        account: str | None = None,
        inherited: Mapping[str, str] | None = None,
        notes: list[str] | None = None,
    ) -> list[Finding]:
        """The forged-tag finding (when a tag disagreed with the record) and the violation's news, if any."""
        account = account or (event.account_id if event else None) or image.owner_id
        actor = event.detail.actor if event else None
        findings: list[Finding] = []
        if change.forged:
            verdict = forged_tag_verdict(image, change, recorded)
            findings.append(self._finding(verdict, image, account, actor=actor, action=self._tag_action, event=event))
        if not change.newsworthy:
            return findings
        if change.transition is Transition.RESOLVED:
            findings.append(self._resolved(image, account=account, actor=actor, recorded=recorded, event=event))
            return findings
        verdict = tag_violation_verdict(image, evaluation, self._rules, change, inherited=inherited, notes=notes or ())
        findings.append(self._finding(verdict, image, account, actor=actor, action=self._tag_action, event=event))
        return findings

    def _resolved(
        self,
        image: Image,
        *,
        account: str,
        actor: str | None,
        recorded: ViolationRecord | None,
        event: CloudTrailEvent | None = None,
    ) -> Finding:
        name = f" ({image.name})" if image.name else ""
        return Finding(
            type=FindingType.RESOLVED,
            severity=Severity.INFO,
            summary=f"AMI {image.image_id}{name} now has every required tag: violation cleared",
            account=account,
            region=image.region,
            image_id=image.image_id,
            image_name=image.name,
            actor=actor,
            event_id=(event.detail.event_id or event.id) if event else None,
            event_time=event.occurred_at if event else None,
            action=self._tag_action,
            evidence={
                "previous_violation": recorded.violation if recorded else image.tags.get(VIOLATION),
                "violation_since": iso(recorded.since) if recorded else None,
            },
        )
