"""The notifier's record of what it posted to people: one ledger row per alert id, written conditionally.

SNS delivers at least once (a Publish whose answer was lost is retried and reaches the topic twice; SNS itself
redelivers), so the notifier keeps, per alert, one row ``pk POSTED#<alert id>``, ``sk SLACK``:

- ``posting``: claimed by the invocation about to post (``lease_until`` its Lambda deadline): another copy
  of the alert arriving meanwhile is retried later, not posted alongside;
- ``posted``: Slack said ok; every later copy is skipped;
- ``unconfirmed``: the post was sent and its answer never came (a read timeout). Treated as posted: see
  :class:`amiguard.services.notifier.Notifier` for why;
- a claim whose post definitely failed is given back (its lease dated in the past): the retry posts.

The alert id (:func:`alert_id`) is the finding's ledger key, rebuilt from the finding itself: the same alert
published twice has the same id, a hostile publisher cannot make the notifier skip a real alert without
knowing its triggering event's id first. Every write is a conditional PutItem on ``POSTED#`` keys only, so
the notifier's role needs nothing else (``dynamodb:LeadingKeys``). Rows expire after :data:`RETENTION`,
longer than the failure queue keeps a message (14 days), so a redrive never posts twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from amiguard.aws.errors import error_code
from amiguard.aws.ledger import finding_pk, finding_sk, iso
from amiguard.models.findings import Finding
from amiguard.models.ledger_keys import POSTED_SK, posted_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RETENTION = timedelta(days=15)
STALE_CLAIM = timedelta(minutes=15)  # outside Lambda (no deadline): longer than any function's timeout
LEASE_MARGIN = timedelta(seconds=5)
RELEASED = "0000-00-00T00:00:00.000000Z"


def alert_id(finding: Finding) -> str:
    """The alert's de-duplication id: the key of the finding's ledger row (``IMAGE#...#FINDING#...``)."""
    return f"{finding_pk(finding)}#{finding_sk(finding)}"


class PostState(StrEnum):
    POSTING = "posting"
    POSTED = "posted"
    UNCONFIRMED = "unconfirmed"


class PostInFlight(RuntimeError):
    """Another invocation is posting this alert right now: raised, so Lambda retries this copy later."""


@dataclass(frozen=True)
class PostClaim:
    alert_id: str
    token: str


class PostedAlerts:
    """Claims, confirms and gives back posts in the ledger table."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table_name: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        deadline: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        self._db = dynamodb
        self.table_name = table_name
        self._clock = clock
        self._deadline = deadline

    def _item(self, claim: PostClaim, state: PostState, lease_until: str) -> dict[str, Any]:
        now = self._clock()
        return {
            "pk": {"S": posted_pk(claim.alert_id)},
            "sk": {"S": POSTED_SK},
            "kind": {"S": "posted"},
            "state": {"S": state.value},
            "claim_token": {"S": claim.token},
            "lease_until": {"S": lease_until},
            "updated_at": {"S": iso(now)},
            "expires_at": {"N": str(int((now + RETENTION).timestamp()))},
        }

    def claim(self, alert: str) -> PostClaim | None:
        """The right to post ``alert`` now; None when it was posted (or possibly posted) already."""
        now = self._clock()
        deadline = self._deadline()
        claim = PostClaim(alert, str(uuid.uuid4()))
        lease = iso((deadline + LEASE_MARGIN) if deadline else now + STALE_CLAIM)
        try:
            self._db.put_item(
                TableName=self.table_name,
                Item=self._item(claim, PostState.POSTING, lease),
                ConditionExpression="attribute_not_exists(pk) OR (#state = :posting AND lease_until < :now)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":posting": {"S": PostState.POSTING.value}, ":now": {"S": iso(now)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            old: dict[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
            if old.get("state", {}).get("S") == PostState.POSTING.value:
                raise PostInFlight(f"alert {alert} is being posted by another invocation; retry later") from None
            return None
        return claim

    def _settle(self, claim: PostClaim, state: PostState, lease_until: str) -> None:
        try:
            self._db.put_item(
                TableName=self.table_name,
                Item=self._item(claim, state, lease_until),
                ConditionExpression="claim_token = :token",
                ExpressionAttributeValues={":token": {"S": claim.token}},
            )
        except ClientError as error:
            # Our lease ran out and another invocation took the claim over: its write is the one that counts.
            if error_code(error) != "ConditionalCheckFailedException":
                raise

    def confirm(self, claim: PostClaim, *, answered: bool = True) -> None:
        """The post went out (``answered``) or was sent with no answer: no copy of the alert is posted again."""
        self._settle(claim, PostState.POSTED if answered else PostState.UNCONFIRMED, RELEASED)

    def release(self, claim: PostClaim) -> None:
        """The post definitely failed: the claim is free at once, so Lambda's retry posts."""
        self._settle(claim, PostState.POSTING, RELEASED)
