"""Screening every event before any function acts on it, and the one parser of each event shape.

``read_cloudtrail``, ``read_service_event``, ``read_ami_state_change`` and ``read_schedule`` are the only places
an EventBridge payload becomes a model (the handlers, the backtest and the sandbox all go through them): each
returns the event or the :class:`Drop` that says why it is not one.

Applies to all CloudTrail-triggered functions. A call that failed changed nothing; a call made by one of
amiguard's own roles must not trigger another action (no loops); ids, regions and accounts must have
the shape AWS gives them before any API is called with them (the public samples carry anonymised ids,
``ami-`` followed by eight capital X, and fake regions such as ``me-south-1r``: those are dropped with a
reason).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from amiguard.models.events import (
    SCHEDULED_EVENT_DETAIL_TYPE,
    AmiStateChangeEvent,
    CloudTrailEvent,
    CloudTrailServiceEvent,
    ScheduledEvent,
)
from amiguard.models.settings import ACCOUNT_ID, IMAGE_ID, REGION
from amiguard.policy.identity import OwnRoles, is_own_call

SNAPSHOT_ID = re.compile(r"^snap-(?:[0-9a-f]{8}|[0-9a-f]{17})$")


# CloudTrail's AMI and snapshot records, in their EventBridge envelope, nest at most about 8 levels (the
# ``items`` wrappers included); SNS notifications fewer. Anything much deeper was not written by AWS.
MAX_EVENT_DEPTH = 32


@dataclass(frozen=True)
class Drop:
    """Why an event is not acted on. ``reason`` is a metric dimension; ``detail`` is for the log."""

    reason: str
    detail: str


def _nests_deeper_than(node: object, limit: int) -> bool:
    """Whether JSON ``node`` nests more than ``limit`` levels (walked without recursion, stopping early)."""
    pending: list[tuple[object, int]] = [(node, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                pending.append((child, depth + 1))
    return False


def event_shape_problem(event: object) -> Drop | None:
    """What makes an invocation's payload no event at all, before any function parses it.

    Anyone allowed to invoke a function can send any JSON: a list, a string, ``null``, or an object nested
    thousands of levels deep (which recursive code, pydantic's included, would crash on).
    """
    if not isinstance(event, dict):
        kind = "null" if event is None else type(event).__name__
        return Drop("malformed-event", f"the payload is {kind}, not a JSON object: no AWS event looks like that")
    if _nests_deeper_than(event, MAX_EVENT_DEPTH):
        return Drop("malformed-event", f"the payload nests deeper than {MAX_EVENT_DEPTH} levels: AWS never does")
    return None


def screen_cloudtrail(event: CloudTrailEvent, *, expected_names: frozenset[str], own: OwnRoles) -> Drop | None:
    """The checks every CloudTrail event passes before a function looks at its parameters.

    ``own`` says whose calls are amiguard's (:mod:`amiguard.policy.identity`).
    """
    record = event.detail
    if record.error_code:
        return Drop("failed-call", f"{record.event_name} failed with {record.error_code}: it changed nothing")
    if record.event_source != "ec2.amazonaws.com" or record.event_name not in expected_names:
        return Drop("unhandled-event", f"{record.event_source} {record.event_name} is not handled here")
    if is_own_call(record.user_identity, own):
        return Drop("amiguard-own-action", f"{record.event_name} was made by amiguard itself")
    if not REGION.match(record.aws_region):
        return Drop("malformed-event", f"awsRegion {record.aws_region!r} is not an AWS region")
    account = event.account_id
    if not account or not ACCOUNT_ID.match(account):
        return Drop("malformed-event", f"account {account!r} is not a 12-digit account id")
    return None


def screen_service_event(event: CloudTrailServiceEvent, *, expected_names: frozenset[str]) -> Drop | None:
    """The checks an "AWS Service Event via CloudTrail" record passes: EC2's, one of ``expected_names``, a real
    region, and both accounts (the owner that receives it, the other account the service acted for) well formed.
    """
    record = event.detail
    if record.event_source != "ec2.amazonaws.com" or record.event_name not in expected_names:
        return Drop("unhandled-event", f"{record.event_source} {record.event_name} is not handled here")
    if not REGION.match(record.aws_region):
        return Drop("malformed-event", f"awsRegion {record.aws_region!r} is not an AWS region")
    account = event.account_id
    if not account or not ACCOUNT_ID.match(account):
        return Drop("malformed-event", f"account {account!r} is not a 12-digit account id")
    other = record.user_identity.account_id if record.user_identity else None
    if not other or not ACCOUNT_ID.match(other):
        return Drop("malformed-event", f"userIdentity.accountId {other!r} is not a 12-digit account id")
    if other == account:
        return Drop("own-account", f"{record.event_name} by the snapshot's own account: nothing was shared")
    return None


def check_image_id(image_id: object) -> Drop | None:
    if not isinstance(image_id, str) or not IMAGE_ID.match(image_id):
        return Drop("malformed-event", f"image id {image_id!r} is not an AMI id")
    return None


def check_snapshot_id(snapshot_id: object) -> Drop | None:
    if not isinstance(snapshot_id, str) or not SNAPSHOT_ID.match(snapshot_id):
        return Drop("malformed-event", f"snapshot id {snapshot_id!r} is not an EBS snapshot id")
    return None


def malformed_event(error: ValidationError) -> Drop:
    """The first thing wrong with an event that does not parse, as a drop reason."""
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": str(error)}
    where = ".".join(str(part) for part in first["loc"]) or "event"
    return Drop("malformed-event", f"{where}: {first['msg']}")


def _parsed[M: BaseModel](model: type[M], raw: Any) -> M | Drop:
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        return malformed_event(error)


def read_cloudtrail(raw: Any) -> CloudTrailEvent | Drop:
    """An "AWS API Call via CloudTrail" event, or why ``raw`` is not one (screen it with :func:`screen_cloudtrail`)."""
    return _parsed(CloudTrailEvent, raw)


def read_service_event(raw: Any) -> CloudTrailServiceEvent | Drop:
    """An "AWS Service Event via CloudTrail" event, or why ``raw`` is not one (then :func:`screen_service_event`)."""
    return _parsed(CloudTrailServiceEvent, raw)


def read_ami_state_change(raw: Any) -> AmiStateChangeEvent | Drop:
    """An "EC2 AMI State Change" event whose account, region and image id have AWS's shape (any state)."""
    event = _parsed(AmiStateChangeEvent, raw)
    if isinstance(event, Drop):
        return event
    region, account = event.region or "", event.account or ""
    if not REGION.match(region):
        return Drop("malformed-event", f"region {region!r} is not an AWS region")
    if not ACCOUNT_ID.match(account):
        return Drop("malformed-event", f"account {account!r} is not an account id")
    return check_image_id(event.detail.image_id) or event


@dataclass(frozen=True)
class SnapshotUse:
    """Another account's use of a shared snapshot, as the "AWS Service Event via CloudTrail" records it."""

    event: CloudTrailServiceEvent
    snapshot_id: str
    used_by: str  # the other account


def read_snapshot_use(raw: Any, *, expected_names: frozenset[str]) -> SnapshotUse | Drop:
    """A SharedSnapshotVolumeCreated / SharedSnapshotCopyInitiated event, screened, with its snapshot id and the
    account that used it (``userIdentity.accountId``; screening checked it is another, well-formed account)."""
    event = read_service_event(raw)
    if isinstance(event, Drop):
        return event
    if drop := screen_service_event(event, expected_names=expected_names):
        return drop
    record = event.detail
    snapshot_id = (record.service_event_details or {}).get("snapshotId")
    if drop := check_snapshot_id(snapshot_id):
        return drop
    return SnapshotUse(event, str(snapshot_id), str(record.user_identity.account_id if record.user_identity else ""))


def read_schedule(raw: Any) -> ScheduledEvent | Drop:
    """The "Scheduled Event" an EventBridge schedule delivers, with a well-formed account (the sweeps' subject)."""
    detail_type = raw.get("detail-type") if isinstance(raw, dict) else None
    if detail_type != SCHEDULED_EVENT_DETAIL_TYPE:
        return Drop("unhandled-event", f"detail-type {detail_type!r} is not a schedule")
    event = _parsed(ScheduledEvent, raw)
    if isinstance(event, Drop):
        return event
    if not ACCOUNT_ID.match(event.account or ""):
        return Drop("malformed-event", f"account {event.account!r} is not a 12-digit account id")
    return event
