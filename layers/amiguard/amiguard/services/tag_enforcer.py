"""tag_enforcer: every new AMI answers "whose is it, what is it for, who pays".

Triggered by CreateImage, CopyImage and RegisterImage (a new AMI, tagged while still ``pending``), by
CreateTags / DeleteTags naming ``ami-*`` ids (re-evaluation), by "EC2 AMI State Change" to ``available``
(snapshots EC2 had not yet listed on the pending AMI get their tags), and by an hourly schedule (the
escalation sweep, in every region the account has enabled). Current tags (DescribeImages) decide;
:mod:`amiguard.policy.tagging` says what to write. In ``audit`` mode nothing is written and nothing
escalates: findings say ``would-tag``.

Duplicate events change nothing and alert nothing: the violation tags already tell the truth, so the second
evaluation is ``unchanged``. amiguard's own CreateTags / DeleteTags never reach this far (screening drops
calls made by roles under ``/amiguard/``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from amiguard.aws.errors import error_code, is_gone
from amiguard.models.events import (
    AMI_STATE_CHANGE_DETAIL_TYPE,
    SCHEDULED_EVENT_DETAIL_TYPE,
    AmiStateChangeEvent,
    CloudTrailEvent,
    CloudTrailRecord,
    ScheduledEvent,
)
from amiguard.models.findings import Action, Finding, FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.settings import IMAGE_ID, REGION, Settings, TagEscalation, TagRule
from amiguard.policy.identity import OwnRoles
from amiguard.policy.screening import Drop, check_image_id, malformed_event
from amiguard.policy.tagging import (
    CREATED_BY,
    ESCALATION_BLOCKED,
    INSTANCE_ID,
    SETTLED_BAD,
    VIOLATION,
    VIOLATION_SINCE,
    Provenance,
    Step,
    TagEvaluation,
    Transition,
    ViolationChange,
    carried_over_violation,
    decide_escalation,
    deprecation_time,
    evaluate_required_tags,
    inherited_tags,
    keys_to_inherit,
    missing_keys,
    provenance_tags,
    read_tag_call,
    snapshot_tags,
    touches_policy,
    violation_change,
)
from amiguard.services.cloudtrail import handle_cloudtrail, publish_findings, stage_findings
from amiguard.services.outcome import Outcome, Status
from amiguard.services.ports import AlertsPort, TaggingInRegion, TaggingPort

CREATION_EVENTS = frozenset({"CreateImage", "CopyImage", "RegisterImage"})
TAG_EVENTS = frozenset({"CreateTags", "DeleteTags"})
EVENT_NAMES = CREATION_EVENTS | TAG_EVENTS

ESCALATION_ACTIONS = {
    Step.DEPRECATE: Action.DEPRECATED,
    Step.DISABLE: Action.DISABLED,
    Step.DEREGISTER: Action.DEREGISTERED,
}


def describe_rule(rule: TagRule) -> str:
    if rule.allowed is not None:
        return "one of " + ", ".join(rule.allowed)
    if rule.pattern is not None:
        return f"matches {rule.pattern}"
    return "any non-empty value"


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
        alerts: AlertsPort,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        regions: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        self._settings = settings
        self._own = OwnRoles.of(settings.own_role_arns)
        self._tagging = tagging
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

        provenance, notes = self._provenance(record, image)
        current = dict(image.tags)
        stale = carried_over_violation(current, image.creation_date)
        if stale:
            notes.append("violation tags carried over from before the AMI existed were replaced")
            for key in stale:
                current.pop(key)
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
        change = violation_change(tags, evaluation, self._clock())

        writes = _Writes()
        writes.set([image.image_id], auto | inherited | dict(change.add))
        writes.delete(
            image.image_id, tuple(dict.fromkeys((*change.remove, *(k for k in stale if k not in change.add))))
        )
        writes.set(list(image.snapshot_ids), snapshot_tags(tags, self._inherit_keys))
        finding = self._finding_for(event, image, evaluation, change, inherited=inherited, notes=notes)
        # Staged before tagging: a retry finds the violation already marked and would not alert on its own.
        stage_findings(self._alerts, [finding] if finding else [])
        if self._settings.enforcing:
            writes.apply(tagging)

        detail = self._written(auto, inherited, image)
        if notes:
            detail += "; " + "; ".join(notes)
        if finding is None:
            return Outcome.clean("compliant", detail)
        return Outcome(Status.ACTED, finding.type.value, detail, findings=[finding])

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
        try:
            event = AmiStateChangeEvent.model_validate(raw_event)
        except ValidationError as error:
            return Outcome.dropped(malformed_event(error))
        detail = event.detail
        region = event.region or ""
        if detail.state != "available":
            return Outcome.dropped(Drop("unhandled-event", f"{detail.image_id} is {detail.state}"), event.id)
        if (drop := check_image_id(detail.image_id)) or not REGION.match(region):
            reason = drop.detail if drop else f"region {region!r} is not an AWS region"
            return Outcome.dropped(Drop("malformed-event", reason), event.id)
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
        for image in images:
            evaluation = evaluate_required_tags(image.tags, self._rules)
            change = violation_change(image.tags, evaluation, now)
            writes.set([image.image_id], change.add)
            writes.delete(image.image_id, change.remove)
            if record.event_name == "CreateTags" and call.keys:
                # the owner's fix reaches the storage too: copy the keys just set onto the snapshots
                changed = [key for key in call.keys if key in self._inherit_keys]
                writes.set(list(image.snapshot_ids), snapshot_tags(image.tags, changed))
            finding = self._finding_for(event, image, evaluation, change)
            if finding is not None:
                findings.append(finding)
        stage_findings(self._alerts, findings)
        if self._settings.enforcing and writes:
            writes.apply(tagging)
        detail = f"{len(images)} AMI(s) evaluated of {call.resource_count} resources"
        if not findings:
            return Outcome.clean("unchanged", detail)
        return Outcome(Status.ACTED, "re-evaluated", detail, findings=findings)

    # --- escalation sweep -------------------------------------------------------------------------------

    def _sweep(self, raw_event: dict[str, Any]) -> Outcome:
        try:
            event = ScheduledEvent.model_validate(raw_event)
        except ValidationError as error:
            return Outcome.dropped(malformed_event(error))
        if not self._settings.enforcing:
            return Outcome.clean("audit-mode", "audit mode: violations are reported, never escalated", event.id)
        region = event.region or ""
        if not REGION.match(region):
            return Outcome.dropped(Drop("malformed-event", f"region {region!r} is not an AWS region"), event.id)
        now = self._clock()
        findings: list[Finding] = []
        waiting = 0
        failed: list[str] = []
        for swept in self._regions(region) if self._regions else [region]:
            try:
                waiting += self._sweep_region(self._tagging(swept), event, now, findings)
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

    def _sweep_region(self, tagging: TaggingPort, event: ScheduledEvent, now: datetime, findings: list[Finding]) -> int:
        """One region's AMIs in violation: clear what is fixed, escalate what is overdue (findings appended);
        returns how many are still within grace or already escalated."""
        escalation = self._settings.tag_escalation
        waiting = 0
        for image in tagging.images_in_violation():
            evaluation = evaluate_required_tags(image.tags, self._rules)
            if evaluation.compliant:
                # a CreateTags event was missed (or the policy changed): clear, do not escalate
                change = violation_change(image.tags, evaluation, now)
                tagging.remove_tags([image.image_id], change.remove)
                findings.append(self._resolved(image, account=event.account or image.owner_id, actor=None))
                continue
            if escalation is TagEscalation.NONE:
                continue
            decision = decide_escalation(
                image, escalation=escalation, grace_hours=self._settings.tag_grace_hours, now=now
            )
            if decision.step is Step.DEREGISTER:
                decision = decide_escalation(
                    image,
                    escalation=escalation,
                    grace_hours=self._settings.tag_grace_hours,
                    now=now,
                    instances_in_use=tagging.instances_using(image.image_id),
                )
            if decision.step in {Step.WAIT, Step.DONE}:
                waiting += 1
                continue
            if decision.step is Step.BLOCKED:
                if image.tags.get(ESCALATION_BLOCKED) == decision.reason[:256]:
                    continue  # already alerted
                tagging.add_tags([image.image_id], {ESCALATION_BLOCKED: decision.reason[:256]})
            elif decision.step is Step.DEPRECATE:
                tagging.deprecate(image.image_id, deprecation_time(now))
            elif decision.step is Step.DISABLE:
                tagging.disable(image.image_id)
            elif decision.step is Step.DEREGISTER:
                tagging.deregister(image.image_id)
            findings.append(self._escalated(image, decision.step, decision.reason, event))
        return waiting

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

    def _finding_for(
        self,
        event: CloudTrailEvent,
        image: Image,
        evaluation: TagEvaluation,
        change: ViolationChange,
        *,
        inherited: Mapping[str, str] | None = None,
        notes: list[str] | None = None,
    ) -> Finding | None:
        if not change.newsworthy:
            return None
        account = event.account_id or image.owner_id
        if change.transition is Transition.RESOLVED:
            return self._resolved(image, account=account, actor=event.detail.actor, event=event)
        name = f" ({image.name})" if image.name else ""
        if evaluation.missing:
            summary = f"AMI {image.image_id}{name} lacks required tags {', '.join(evaluation.missing)}"
        else:
            summary = f"AMI {image.image_id}{name} has invalid values for {', '.join(evaluation.invalid)}"
        evidence: dict[str, Any] = {
            "violation": evaluation.violation,
            "missing": list(evaluation.missing),
            "rules": {key: describe_rule(rule) for key, rule in self._rules.items()},
            "event": event.detail.event_name,
            "created_by": image.tags.get(CREATED_BY) or event.detail.actor,
        }
        if evaluation.rejected_values:
            evidence["invalid"] = dict(evaluation.rejected_values)
        if change.transition is Transition.CHANGED:
            evidence["previous_violation"] = image.tags.get(VIOLATION)
        if inherited:
            evidence["inherited"] = dict(inherited)
        if notes:
            evidence["notes"] = list(notes)
        return Finding(
            type=evaluation.finding_type,
            severity=Severity.MEDIUM,
            summary=summary,
            account=account,
            region=image.region,
            image_id=image.image_id,
            image_name=image.name,
            actor=event.detail.actor,
            event_id=event.detail.event_id or event.id,
            event_time=event.occurred_at,
            action=Action.TAGGED if self._settings.enforcing else Action.WOULD_TAG,
            evidence=evidence,
        )

    def _resolved(
        self, image: Image, *, account: str, actor: str | None, event: CloudTrailEvent | None = None
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
            action=Action.TAGGED if self._settings.enforcing else Action.WOULD_TAG,
            evidence={
                "previous_violation": image.tags.get(VIOLATION),
                "violation_since": image.tags.get(VIOLATION_SINCE),
            },
        )

    def _escalated(self, image: Image, step: Step, reason: str, event: ScheduledEvent) -> Finding:
        name = f" ({image.name})" if image.name else ""
        violation = image.tags.get(VIOLATION)
        if step is Step.BLOCKED:
            summary = (
                f"AMI {image.image_id}{name} is overdue ({violation}) but was not deregistered: {reason}; "
                "a human must decide"
            )
        else:
            summary = f"AMI {image.image_id}{name} {ESCALATION_ACTIONS[step].value}: {violation} past the grace period"
        return Finding(
            type=FindingType.ESCALATED,
            severity=Severity.HIGH if step in {Step.BLOCKED, Step.DEREGISTER} else Severity.MEDIUM,
            summary=summary,
            account=event.account or image.owner_id,
            region=image.region,
            image_id=image.image_id,
            image_name=image.name,
            actor=image.tags.get(CREATED_BY),
            event_id=event.id,
            event_time=event.time,
            action=ESCALATION_ACTIONS.get(step, Action.NONE),
            evidence={
                "violation": violation,
                "violation_since": image.tags.get(VIOLATION_SINCE),
                "escalation": self._settings.tag_escalation.value,
                "grace_hours": self._settings.tag_grace_hours,
                "reason": reason,
            },
        )
