"""What the fuzz modules share: real-shaped events mutated by hypothesis, a seeded sandbox account, and the check
that a delivery neither crashed nor made a call its function may not make on that account's state.

Events start from the real recordings (``tests/fixtures/cloudtrail-samples``), every file of ``events/``, a
schedule and an SNS alert, and are mutated: a field set to a value of another type (or a huge list, a long
unicode string, a nested structure, an AMI id of the seeded account), a key removed, a list blown up to
thousands of items, every leaf of a subtree given another type. Any function may receive any of them: anyone
who may invoke a function directly can send it anything, so each function is fuzzed with every shape, not
only its own (its own weighted up).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from amiguard.models.events import wrap_cloudtrail_record
from amiguard_cli.sandbox.account import Delivery, Sandbox

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "fixtures" / "cloudtrail-samples"
EVENTS = ROOT / "events"
ACCOUNT = "123456789012"
# A stack with every path on: required tags, DR replication, escalation by deregistration.
PARAMETERS = {
    "Mode": "enforce",
    "RequiredTags": "Owner,CostCenter",
    "DrRegions": "us-west-2",
    "TagEscalation": "deregister",
    "TrustedPrincipals": "222233334444",
}
READ_VERBS = ("Describe", "Get", "List", "Query", "BatchGet", "Scan")
# The alert path and amiguard's ledger: every function may record and alert.
ALERT_PATH = frozenset({"sns:Publish", "dynamodb:PutItem", "dynamodb:UpdateItem"})
# What a retry can cure: raised on purpose (Lambda retries the event). Nothing else may escape a handler.
RETRYABLE = re.compile(
    r"^(ClientError: .*\((Throttling|ThrottlingException|RequestLimitExceeded|InternalError|ServiceUnavailable|"
    r"TransactionConflict|ProvisionedThroughputExceededException)\)|AlertInFlight|EndpointConnectionError|"
    r"ReadTimeoutError|ConnectTimeoutError)"
)


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document if "detail-type" in document else wrap_cloudtrail_record(document)


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d0f0f",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-01-05T06:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/amiguard-Sweep"],
        "detail": {},
    }


def sns_event() -> dict[str, Any]:
    finding = {
        "type": "public-share",
        "severity": "critical",
        "summary": "AMI ami-0123456789abcdef0 was made public.",
        "account": ACCOUNT,
        "region": "us-east-1",
        "image_id": "ami-0123456789abcdef0",
        "action": "revoked",
        "evidence": {"grants": ["group:all"]},
        "detected_at": "2026-01-05T06:00:00Z",
    }
    sns = {
        "Type": "Notification",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:amiguard-alerts",
        "Subject": "amiguard: public-share",
        "Message": json.dumps(finding),
        "Timestamp": "2026-01-05T06:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertUrl": "",
        "UnsubscribeUrl": "",
        "MessageAttributes": {"type": {"Type": "String", "Value": "public-share"}},
    }
    subscription = f"arn:aws:sns:us-east-1:{ACCOUNT}:amiguard-alerts:3f1c2c1e-0000-4000-8000-000000000001"
    return {
        "Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": subscription, "Sns": sns}]
    }


def base_events(function: str) -> list[dict[str, Any]]:
    """Every real-shaped event the project has, plus a schedule and an SNS alert; the function's own events
    (``events/<function>/``) three times, so that most examples reach past its screening."""
    own = [_load(path) for path in sorted((EVENTS / function).glob("*.json"))]
    paths = sorted(SAMPLES.glob("*.json")) + sorted(EVENTS.glob("*/*.json"))
    return [_load(path) for path in paths] + [scheduled_event(), sns_event()] + own * 2


# --- values and mutations ---------------------------------------------------------------------------------

AMI_IDS = st.sampled_from(["ami-0123456789abcdef0", "ami-12c6146b", "ami-XXXX", "ami-", "AMI-0123456789ABCDEF0"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | AMI_IDS
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=15,
)


def nested(depth: int) -> Any:
    value: Any = "ami-0123456789abcdef0"
    for level in range(depth):
        value = [value] if level % 2 else {"items": value}
    return value


# Deep nesting up to 200 levels. Left out on purpose, as the `trust` engineer hardens them in
# observability.handle_event: non-object events (a list, a string or null as the whole event: dr_replicator and
# the sweeper raise AttributeError on them today), so mutations never replace the top level; and nesting deep
# enough to reach Python's recursion limit in a JSON encoder or pydantic.
WEIRD = st.one_of(
    JSON,
    st.text(min_size=1000, max_size=5000),  # long, any unicode
    st.integers(min_value=1, max_value=200).map(nested),
    st.builds(lambda item, n: [item] * n, JSON, st.integers(min_value=1000, max_value=3000)),  # huge lists
)


FOCUS = {("detail", "requestParameters"), ("detail", "responseElements")}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:20]):
            yield from _paths(value, (*prefix, index))


def _scrambled(draw: st.DrawFn, node: Any) -> Any:
    """The subtree with every leaf replaced by a scalar of any type (the shape kept, the types not)."""
    if isinstance(node, dict):
        return {key: _scrambled(draw, value) for key, value in node.items()}
    if isinstance(node, list):
        return [_scrambled(draw, value) for value in node[:50]]
    return draw(SCALARS)


def _parent(event: Any, path: tuple[Any, ...]) -> Any:
    node = event
    for step in path[:-1]:
        node = node[step]
    return node


@st.composite
def mutated_events(draw: st.DrawFn, bases: list[dict[str, Any]], ids: st.SearchStrategy[str]) -> Any:
    """A real-shaped event with one to three mutations (each on a path that exists when it is made); ``ids``: the
    seeded account's AMI ids, so that mutated events reach the paths that act on current state."""
    event: Any = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = [path for path in _paths(event) if path]  # never the top level: see WEIRD
        if not paths:
            break
        # half the mutations land where the ids and tags are read: the request and response of the call
        focus = [path for path in paths if path[:2] in FOCUS]
        path = draw(st.sampled_from(focus if focus and draw(st.booleans()) else paths))
        parent = _parent(event, path)
        kind = draw(st.sampled_from(["set", "set", "delete", "multiply", "scramble", "scramble"]))
        if kind == "delete":
            del parent[path[-1]]
        elif kind == "scramble":
            parent[path[-1]] = _scrambled(draw, parent[path[-1]])
        elif kind == "multiply" and isinstance(parent[path[-1]], list) and parent[path[-1]]:
            parent[path[-1]] = parent[path[-1]] * draw(st.integers(min_value=100, max_value=1500))
        else:
            parent[path[-1]] = draw(WEIRD | ids)
    return event


# --- the account and the check ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """The AMIs planted before the fuzzing starts (none public, none approved for DR)."""

    compliant: str
    untagged: str


def seed(sb: Sandbox) -> Seeded:
    """Two private AMIs (one compliant, one lacking its tags) and image block public access on, planted without
    CloudTrail events: nothing about them may be remediated but the missing tags."""
    ec2 = sb.internal_client("ec2")
    ec2.enable_image_block_public_access(ImageBlockPublicAccessState="block-new-sharing")
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ownership = [{"Key": "Owner", "Value": "bob@example.com"}, {"Key": "CostCenter", "Value": "cc-1"}]
    compliant = ec2.create_image(
        InstanceId=instance, Name="fuzz-compliant", TagSpecifications=[{"ResourceType": "image", "Tags": ownership}]
    )["ImageId"]
    untagged = ec2.create_image(InstanceId=instance, Name="fuzz-untagged")["ImageId"]
    return Seeded(str(compliant), str(untagged))


def seeded_ids(seeded: Seeded) -> st.SearchStrategy[str]:
    return st.sampled_from([seeded.compliant, seeded.untagged])


def mutating(delivery: Delivery) -> set[str]:
    """The IAM actions of the delivery's calls that change something (reads left out)."""
    return {call for call in delivery.calls if not call.split(":", 1)[1].startswith(READ_VERBS)}


def assert_survived(delivery: Delivery, may: frozenset[str]) -> None:
    """No crash (a result, or an error a retry can cure) and no mutating call outside ``may`` and the alert path."""
    assert delivery.error is None or RETRYABLE.match(delivery.error), f"{delivery.function} crashed: {delivery.error}"
    if delivery.error is None:
        assert isinstance(delivery.result, dict), f"{delivery.function} returned {delivery.result!r}"
    unexpected = mutating(delivery) - may - ALERT_PATH
    assert not unexpected, f"{delivery.function} made {sorted(unexpected)} on a state that calls for none of it"
