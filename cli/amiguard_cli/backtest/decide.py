"""What amiguard would have done with each CloudTrail record, from the events alone (the AMIs may be gone).

Each record is wrapped as EventBridge delivers it and routed by ``template.yaml``'s own rules: only the functions
whose rules match it look at it, and each screens it as that function does (failed calls, amiguard's own calls,
malformed ids and regions are skipped, with the reason counted). Then the functions' own policy decides:

- ``public_guard``: launch or create-volume permissions *added* to the public or to untrusted principals
  (removals yield nothing), image or EBS snapshot block public access turned off, and another account's use of a
  shared snapshot ("AWS Service Event via CloudTrail" SharedSnapshotVolumeCreated / SharedSnapshotCopyInitiated);
- ``tag_enforcer``: the tags of each AMI created in the history, from its ``tagSpecificationSet`` and every later
  CreateTags / DeleteTags in the same history, against the required-tag rules; for an AMI created before the
  history began, only what the history shows (a required key deleted, a value a rule rejects). A RegisterImage
  that asks for a paravirtual or instance-store AMI is ``ami-legacy-platform``; whether an AMI is encrypted only
  DescribeImages tells (``amiguard scan``), so creations are counted as ``needs-describe-images``;
- ``dr_replicator``: approvals (the approval tag set to ``true``, at creation or later) while DR regions are set,
  one copy per destination region, withdrawn approvals forgotten; the deregistration of an AMI the history
  copied is ReplicaCleanup applied to its copies;
- ``tamper_guard``: its own decision (the call names one of the stack's resources, from the stack's settings).

What only current state or amiguard's ledger can tell ("EC2 AMI State Change": a copy settling, snapshots to tag)
is counted with the reason, never guessed. Every event a function's rule routes has an entry in
:meth:`Backtest.understands`; a routed event without one is counted ``not-in-backtest`` (a test keeps that at zero
for every rule of template.yaml).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from amiguard.models.events import (
    AMI_STATE_CHANGE_DETAIL_TYPE,
    CLOUDTRAIL_DETAIL_TYPE,
    CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE,
    CloudTrailEvent,
    CloudTrailServiceEvent,
)
from amiguard.models.findings import Action, Finding, FindingType, Severity
from amiguard.models.images import Image
from amiguard.models.settings import IMAGE_ID, Settings
from amiguard.policy.hygiene import (
    INSTANCE_STORE,
    SHARED_SNAPSHOT_EVENTS,
    legacy_platform_verdict,
    shared_snapshot_used_verdict,
)
from amiguard.policy.identity import OwnRoles
from amiguard.policy.replication import CREATION_EVENTS, TAG_EVENTS, approval_change, cleanup_outcome
from amiguard.policy.screening import (
    Drop,
    check_image_id,
    check_snapshot_id,
    read_ami_state_change,
    read_cloudtrail,
    read_snapshot_use,
    screen_cloudtrail,
)
from amiguard.policy.sharing import (
    IMAGE_BLOCK_PUBLIC_ACCESS,
    SNAPSHOT_BLOCK_PUBLIC_ACCESS,
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
from amiguard.services.tamper_guard import TamperGuard
from amiguard_cli.history import as_event
from amiguard_cli.sandbox.cfn import Route, Router

Decide = Callable[[CloudTrailEvent], "Drop | None"]
NOT_IN_BACKTEST = "not-in-backtest"
# What an "EC2 AMI State Change" makes each function do, and why the events alone cannot say what it would do.
STATE_CHANGES = {
    "tag_enforcer": "tags the new AMI's snapshots from what DescribeImages shows then (amiguard scan shows it now)",
    "dr_replicator": "settles a DR copy the ledger records, or copies an approved AMI: only the ledger knows which",
}
BLOCK_PUBLIC_ACCESS = {
    "DisableImageBlockPublicAccess": IMAGE_BLOCK_PUBLIC_ACCESS,
    "DisableSnapshotBlockPublicAccess": SNAPSHOT_BLOCK_PUBLIC_ACCESS,
}


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
    value = record.get("eventTime", record.get("time"))  # a CloudTrail record, or an event no record holds
    return value if isinstance(value, str) else ""


class Backtest:
    """Replays history through the template's routing and the functions' policies (see the module notes)."""

    def __init__(self, settings: Settings, routes: list[Route]) -> None:
        self._settings = settings
        self._router = Router(routes)
        # The stack's roles (AMIGUARD_OWN_ROLE_ARNS, as the deployed functions get it): their calls yield nothing.
        self._own = OwnRoles.of(settings.own_role_arns, organization=settings.organization)
        # Each CloudTrail-driven function's API calls (its own EVENT_NAMES screen them) and the decision here.
        self._api_calls: dict[str, tuple[frozenset[str], dict[str, Decide]]] = {
            "public_guard": (
                public_guard.EVENT_NAMES,
                {
                    "ModifyImageAttribute": self._sharing,
                    "ModifySnapshotAttribute": self._sharing,
                    **dict.fromkeys(BLOCK_PUBLIC_ACCESS, self._block_public_access),
                },
            ),
            "tag_enforcer": (tag_enforcer.EVENT_NAMES, dict.fromkeys(CREATION_EVENTS | TAG_EVENTS, self._tags)),
            "dr_replicator": (
                dr_replicator.EVENT_NAMES,
                {**dict.fromkeys(CREATION_EVENTS | TAG_EVENTS, self._approval), "DeregisterImage": self._deregistered},
            ),
        }
        self._tamper_guard = TamperGuard(settings=settings, alerts=_NoAlerts())
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

    def understands(self, function: str, envelope: dict[str, Any]) -> bool:
        """Whether the backtest has a decision for what ``function`` does with this (routed) event."""
        detail = envelope.get("detail")
        detail_type = envelope.get("detail-type")
        name = str(detail.get("eventName")) if isinstance(detail, dict) else ""
        if detail_type == AMI_STATE_CHANGE_DETAIL_TYPE:
            return function in STATE_CHANGES
        if detail_type == CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE:
            return function == "public_guard" and name in SHARED_SNAPSHOT_EVENTS
        if detail_type != CLOUDTRAIL_DETAIL_TYPE:
            return False
        if function == "tamper_guard":
            return True  # its own decision, for whatever its rule routes
        return name in self._api_calls.get(function, ((), {}))[1]

    def _record(self, record: dict[str, Any]) -> None:
        envelope = as_event(record)
        functions = self._router.functions(envelope)
        if not functions:
            self.skipped["not-routed"] += 1
            return
        for function in sorted(functions):
            if not self.understands(function, envelope):
                self.skipped[NOT_IN_BACKTEST] += 1
            elif drop := self._route(function, envelope):
                self.skipped[drop.reason] += 1

    def _route(self, function: str, envelope: dict[str, Any]) -> Drop | None:
        detail_type = envelope.get("detail-type")
        if detail_type == AMI_STATE_CHANGE_DETAIL_TYPE:
            change = read_ami_state_change(envelope)
            return change if isinstance(change, Drop) else Drop("needs-current-state", STATE_CHANGES[function])
        if detail_type == CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE:
            return self._shared_snapshot_used(envelope)
        event = read_cloudtrail(envelope)
        if isinstance(event, Drop):
            return event
        if function == "tamper_guard":
            return self._tampering(envelope)
        names, decisions = self._api_calls[function]
        return screen_cloudtrail(event, expected_names=names, own=self._own) or decisions[event.detail.event_name](
            event
        )

    def _decide(
        self,
        event: CloudTrailEvent | CloudTrailServiceEvent,
        function: str,
        resource: str,
        verdict: Verdict,
        action: Action,
        *,
        actor: str | None = None,
    ) -> None:
        self.decisions.append(
            WouldDo(
                time=event.occurred_at,
                account=event.account_id or "",
                region=event.detail.aws_region,
                actor=actor or event.detail.actor,
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

    def _block_public_access(self, event: CloudTrailEvent) -> Drop | None:
        """Turned off: turned back on (unless a declarative policy manages it, which only EC2 says, at the time)."""
        record = event.detail
        kind = BLOCK_PUBLIC_ACCESS[record.event_name]
        verdict = block_public_access_verdict(record.aws_region, "unblocked", kind=kind)
        revoke = Action.REVOKED if self._settings.enforcing else Action.WOULD_REVOKE
        resource = f"{kind.policy_attribute.replace('_', '-')}/{record.aws_region}"
        self._decide(event, "public_guard", resource, verdict, revoke)
        return None

    def _shared_snapshot_used(self, envelope: dict[str, Any]) -> Drop | None:
        """Another account used a shared snapshot: an alert naming it (nothing to undo, as public_guard)."""
        use = read_snapshot_use(envelope, expected_names=SHARED_SNAPSHOT_EVENTS)
        if isinstance(use, Drop):
            return use
        verdict = shared_snapshot_used_verdict(
            use,
            trusted_principals=self._settings.trusted_principals,
            backed_images=(),
            still_shared=True,  # not known from the history: the summary then says nothing of now
        )
        self._decide(use.event, "public_guard", use.snapshot_id, verdict, Action.NONE, actor=use.used_by)
        return None

    def _sharing(self, event: CloudTrailEvent) -> Drop | None:
        record, settings = event.detail, self._settings
        revoke = Action.REVOKED if settings.enforcing else Action.WOULD_REVOKE
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
            return self._hygiene(event, str(image_id))
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

    def _hygiene(self, event: CloudTrailEvent, image_id: str) -> Drop | None:
        """``ami-legacy-platform`` from what a RegisterImage asked for; encryption needs DescribeImages."""
        record = event.detail
        if record.event_name == "RegisterImage":
            image = _registered(record.params, image_id, record.aws_region, event.account_id or "")
            if verdict := legacy_platform_verdict(image):
                self._decide(event, "tag_enforcer", image_id, verdict, Action.NONE)
        if record.event_name == "CopyImage" and record.params.get("encrypted") is True:
            return None  # a copy made with Encrypted=true has every volume encrypted
        return Drop("needs-describe-images", f"{image_id}: only DescribeImages says whether it is encrypted")

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

    def _deregistered(self, event: CloudTrailEvent) -> Drop | None:
        """A source the history copied is deregistered: ReplicaCleanup on each copy (the ledger's, in AWS)."""
        record, settings = event.detail, self._settings
        image_id = record.params.get("imageId")
        if drop := check_image_id(image_id):
            return drop
        key = (event.account_id or "", record.aws_region, str(image_id))
        destinations = [region for region in settings.dr_regions if region != record.aws_region]
        if key not in self._approved or not destinations:
            return Drop("no-copies-in-history", f"the history shows no DR copy of {image_id}")
        self._approved.discard(key)
        verb, action = cleanup_outcome(settings.replica_cleanup, enforcing=settings.enforcing)
        verdict = Verdict(
            FindingType.REPLICA_CLEANUP,
            Severity.INFO,
            f"Source AMI {image_id} in {record.aws_region} was deregistered: {len(destinations)} DR replica(s) {verb}",
            {"destination_regions": destinations, "cleanup": settings.replica_cleanup.value},
        )
        self._decide(event, "dr_replicator", str(image_id), verdict, action)
        return None

    # --- tamper_guard --------------------------------------------------------------------------------------

    def _tampering(self, envelope: dict[str, Any]) -> Drop | None:
        """tamper_guard's own decision: it reads nothing but the event and the stack's settings."""
        outcome = self._tamper_guard.handle(envelope)
        if not outcome.findings:
            return Drop(outcome.reason, outcome.detail)
        event = read_cloudtrail(envelope)
        if isinstance(event, Drop):
            return event
        for finding in outcome.findings:
            resource = str(finding.evidence.get("resource") or "")
            self._decide(event, "tamper_guard", resource, _as_verdict(finding), finding.action)
        return None


class _NoAlerts:
    """tamper_guard's alerts port, never used: the backtest only asks it what it would decide."""

    def publish(self, finding: Finding) -> None:
        raise AssertionError("the backtest publishes nothing")


def _as_verdict(finding: Finding) -> Verdict:
    return Verdict(finding.type, finding.severity, finding.summary, dict(finding.evidence))


def _registered(params: dict[str, Any], image_id: str, region: str, account: str) -> Image:
    """The platform a RegisterImage asked for: an S3 manifest (``imageLocation``) without an EBS root is
    instance-store; paravirtual only where the call says so (EC2's default depends on the architecture)."""
    mappings = params.get("blockDeviceMapping")
    items = mappings.get("items") if isinstance(mappings, dict) else mappings
    root = params.get("rootDeviceName")
    ebs_root = any(
        isinstance(item, dict) and item.get("deviceName") == root and isinstance(item.get("ebs"), dict)
        for item in items or []
    )
    instance_store = bool(params.get("imageLocation")) and not ebs_root
    return Image(
        image_id=image_id,
        region=region,
        owner_id=account,
        virtualization_type=str(params.get("virtualizationType") or "") or None,
        root_device_type=INSTANCE_STORE if instance_store else "ebs",
    )


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
