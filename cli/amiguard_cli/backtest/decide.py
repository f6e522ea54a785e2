"""What amiguard would have done with each CloudTrail record, from the events alone (the AMIs may be gone).

Each record is wrapped as EventBridge delivers it and routed by ``template.yaml``'s own rules: only the functions
whose rules match it look at it, and each screens it as that function does (failed calls, amiguard's own calls,
malformed ids and regions are skipped, with the reason counted). Then the functions' own policy decides:

- ``public_guard``: launch or create-volume permissions *added* to the public or to untrusted principals
  (removals yield nothing), and image block public access turned off;
- ``tag_enforcer``: the tags of each AMI created in the history, from its ``tagSpecificationSet`` and every later
  CreateTags / DeleteTags in the same history, against the required-tag rules; for an AMI created before the
  history began, only what the history shows (a required key deleted, a value a rule rejects);
- ``dr_replicator``: approvals (the approval tag set to ``true``, at creation or later) while DR regions are set,
  one copy per destination region, withdrawn approvals forgotten.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from amiguard.models.events import CloudTrailEvent, wrap_cloudtrail_record
from amiguard.models.findings import Action, FindingType, Severity
from amiguard.models.settings import IMAGE_ID, Settings
from amiguard.policy.identity import OwnRoles
from amiguard.policy.replication import approval_change
from amiguard.policy.screening import (
    Drop,
    check_image_id,
    check_snapshot_id,
    malformed_event,
    screen_cloudtrail,
)
from amiguard.policy.sharing import (
    ChangeKind,
    Verdict,
    assess_grants,
    block_public_access_verdict,
    image_verdicts,
    read_permission_change,
    snapshot_verdicts,
)
from amiguard.policy.tagging import evaluate_required_tags, read_tag_call, user_tags
from amiguard.services import dr_replicator, public_guard, tag_enforcer
from amiguard_cli.sandbox.cfn import Route, Router

CREATION_EVENTS = frozenset({"CreateImage", "CopyImage", "RegisterImage"})


@dataclass(frozen=True)
class WouldDo:
    """One decision amiguard would have made: when, where, who, on what, the finding, the action."""

    time: datetime | None
    account: str
    region: str
    actor: str | None
    event: str
    event_id: str | None
    resource: str
    function: str
    finding: FindingType
    severity: Severity
    action: Action
    summary: str

    def as_row(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat() if self.time else None,
            "account": self.account,
            "region": self.region,
            "actor": self.actor,
            "event": self.event,
            "event_id": self.event_id,
            "resource": self.resource,
            "function": self.function,
            "finding": self.finding.value,
            "severity": self.severity.value,
            "action": self.action.value,
            "summary": self.summary,
        }


@dataclass
class _ImageTags:
    """What the history says of one AMI's tags: all of them when it was created in the history, else the keys seen."""

    created: CloudTrailEvent | None
    tags: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)  # keys last seen deleted (an AMI created before the history)
    last: CloudTrailEvent | None = None


@dataclass
class Result:
    decisions: list[WouldDo]
    records: int
    skipped: Counter[str]


def _time_key(record: dict[str, Any]) -> str:
    value = record.get("eventTime")
    return value if isinstance(value, str) else ""


class Backtest:
    """Replays history through the template's routing and the functions' policies (see the module notes)."""

    def __init__(self, settings: Settings, routes: list[Route]) -> None:
        self._settings = settings
        self._router = Router(routes)
        # The stack's roles (AMIGUARD_OWN_ROLE_ARNS, as the deployed functions get it): their calls yield nothing.
        self._own = OwnRoles.of(settings.own_role_arns, organization=settings.organization)
        self._functions = {  # each function's own event names (its screening) and its decision here
            "public_guard": (public_guard.EVENT_NAMES, self._sharing),
            "tag_enforcer": (tag_enforcer.EVENT_NAMES, self._tags),
            "dr_replicator": (dr_replicator.EVENT_NAMES, self._approval),
        }
        self._images: dict[tuple[str, str, str], _ImageTags] = {}  # (account, region, image) -> tags seen
        self._approved: set[tuple[str, str, str]] = set()
        self.decisions: list[WouldDo] = []
        self.skipped: Counter[str] = Counter()

    def run(self, records: Iterable[dict[str, Any]]) -> Result:
        ordered = sorted(records, key=_time_key)  # CloudTrail files are not in time order across files
        for record in ordered:
            self._record(record)
        self._tag_verdicts()
        self.decisions.sort(key=lambda d: (d.time.isoformat() if d.time else "", d.account, d.region, d.resource))
        return Result(self.decisions, len(ordered), self.skipped)

    # --- routing and screening ---------------------------------------------------------------------------

    def _record(self, record: dict[str, Any]) -> None:
        envelope = wrap_cloudtrail_record(record)
        functions = self._router.functions(envelope)
        if not functions:
            self.skipped["not-routed"] += 1
            return
        try:
            event = CloudTrailEvent.model_validate(envelope)
        except ValidationError as error:
            self.skipped[malformed_event(error).reason] += 1
            return
        for function in sorted(functions):
            if function not in self._functions:
                continue  # notifier, sweeper: not CloudTrail-driven
            names, decide = self._functions[function]
            if (drop := screen_cloudtrail(event, expected_names=names, own=self._own)) or (drop := decide(event)):
                self.skipped[drop.reason] += 1

    def _decide(self, event: CloudTrailEvent, function: str, resource: str, verdict: Verdict, action: Action) -> None:
        self.decisions.append(
            WouldDo(
                time=event.occurred_at,
                account=event.account_id or "",
                region=event.detail.aws_region,
                actor=event.detail.actor,
                event=event.detail.event_name,
                event_id=event.detail.event_id,
                resource=resource,
                function=function,
                finding=verdict.type,
                severity=verdict.severity,
                action=action,
                summary=verdict.summary,
            )
        )

    # --- public_guard --------------------------------------------------------------------------------------

    def _sharing(self, event: CloudTrailEvent) -> Drop | None:
        record, settings = event.detail, self._settings
        revoke = Action.REVOKED if settings.enforcing else Action.WOULD_REVOKE
        if record.event_name == "DisableImageBlockPublicAccess":
            verdict = block_public_access_verdict(record.aws_region, "unblocked")
            self._decide(event, "public_guard", f"image-block-public-access/{record.aws_region}", verdict, revoke)
            return None
        is_image = record.event_name == "ModifyImageAttribute"
        resource = record.params.get("imageId" if is_image else "snapshotId")
        if drop := (check_image_id(resource) if is_image else check_snapshot_id(resource)):
            return drop
        attribute = "launchPermission" if is_image else "createVolumePermission"
        change = read_permission_change(record.params, attribute=attribute)
        if change.kind is not ChangeKind.ADDS:
            return Drop(f"not-exposing-{change.kind.value}", f"{record.event_name} adds no permission")
        exposure = assess_grants(
            change.added,
            own_account=event.account_id or "",
            trusted_principals=settings.trusted_principals,
            public_allowed=is_image and resource in settings.public_allowlist,
        )
        if not exposure.exposed:
            return Drop("not-exposed", "only trusted principals were added")
        resource = str(resource)
        verdicts = image_verdicts(resource, exposure) if is_image else snapshot_verdicts(resource, (), exposure)
        for verdict in verdicts:
            self._decide(event, "public_guard", resource, verdict, revoke)
        return None

    # --- tag_enforcer --------------------------------------------------------------------------------------

    def _tags(self, event: CloudTrailEvent) -> Drop | None:
        record = event.detail
        key = (event.account_id or "", record.aws_region)
        if record.event_name in CREATION_EVENTS:
            image_id = record.response.get("imageId")
            if drop := check_image_id(image_id):
                return drop
            state = _ImageTags(created=event, tags=_specified_image_tags(record.params), last=event)
            self._images[(*key, str(image_id))] = state
            return None
        call = read_tag_call(record.params, image_id_pattern=IMAGE_ID)
        if call.malformed:
            return Drop("malformed-event", call.malformed)
        if not call.image_ids:
            return Drop("no-ami", f"{record.event_name} names no AMI")
        values = dict(_pairs(record.params.get("tagSet")))
        for image_id in call.image_ids:
            state = self._images.setdefault((*key, image_id), _ImageTags(created=None))
            state.last = event
            if record.event_name == "CreateTags":
                state.tags.update(values)
                state.deleted -= set(values)
            elif call.keys is None:  # DeleteTags without a tag set deletes every tag
                state.deleted |= set(self._settings.required_tags) | set(state.tags)
                state.tags.clear()
            else:
                for tag_key in call.keys:
                    state.tags.pop(tag_key, None)
                    state.deleted.add(tag_key)
        return None

    def _tag_verdicts(self) -> None:
        """Once the whole history is read: every AMI whose tags it shows break a rule."""
        rules = self._settings.required_tags
        action = Action.TAGGED if self._settings.enforcing else Action.WOULD_TAG
        for (_, _, image_id), state in sorted(self._images.items()):
            event: CloudTrailEvent | None
            if state.created is not None:
                evaluation = evaluate_required_tags(user_tags(state.tags), rules)
                event = state.created
            else:  # created before the history: judge only the keys the history touched
                seen = {key: rule for key, rule in rules.items() if key in state.tags or key in state.deleted}
                evaluation = evaluate_required_tags(user_tags(state.tags), seen)
                event = state.last
            if evaluation.compliant or event is None:
                continue
            problems = ", ".join(evaluation.missing + evaluation.invalid)
            adjective = "lacks" if evaluation.missing else "has invalid"
            verdict = Verdict(
                evaluation.finding_type,
                Severity.MEDIUM,
                f"AMI {image_id} {adjective} required tags {problems}.",
                {"violation": evaluation.violation},
            )
            self._decide(event, "tag_enforcer", image_id, verdict, action)

    # --- dr_replicator -------------------------------------------------------------------------------------

    def _approval(self, event: CloudTrailEvent) -> Drop | None:
        record, settings = event.detail, self._settings
        if record.event_name not in CREATION_EVENTS | {"CreateTags", "DeleteTags"}:
            return Drop("not-an-approval", f"{record.event_name} grants no approval")
        change = approval_change(record.event_name, record.params, record.response, settings.approval_tag)
        account = event.account_id or ""
        for image_id in change.removed:
            self._approved.discard((account, record.aws_region, image_id))
        if not change.granted:
            return Drop("not-an-approval", f"{record.event_name} grants no approval")
        if not settings.dr_regions:
            return Drop("replication-off", "approved, but DrRegions is empty")
        action = Action.COPIED if settings.enforcing else Action.WOULD_COPY
        for image_id in change.granted:
            if (account, record.aws_region, image_id) in self._approved:
                continue  # approved again: the copies exist already
            self._approved.add((account, record.aws_region, image_id))
            for destination in settings.dr_regions:
                if destination == record.aws_region:
                    continue
                verdict = Verdict(
                    FindingType.REPLICATION_STARTED,
                    Severity.INFO,
                    f"Approved AMI {image_id} would be copied from {record.aws_region} to {destination}.",
                    {"destination_region": destination},
                )
                self._decide(event, "dr_replicator", f"{image_id}->{destination}", verdict, action)
        return None


def _pairs(node: Any) -> list[tuple[str, str]]:
    items = node.get("items") if isinstance(node, dict) else node
    return [
        (str(item["key"]), str(item.get("value") or ""))
        for item in items or []
        if isinstance(item, dict) and isinstance(item.get("key"), str)
    ]


def _specified_image_tags(params: dict[str, Any]) -> dict[str, str]:
    """The tags a creation call gave the image (``tagSpecificationSet`` entries for resource type ``image``)."""
    specs = params.get("tagSpecificationSet")
    items = specs.get("items") if isinstance(specs, dict) else specs
    tags: dict[str, str] = {}
    for spec in items or []:
        if isinstance(spec, dict) and spec.get("resourceType") == "image":
            tags.update(_pairs(spec.get("tags") or spec.get("tagSet")))
    return tags
