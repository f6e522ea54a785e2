"""EventBridge events amiguard consumes: CloudTrail API calls and service events, EC2 AMI state changes, schedules.

Input models ignore unknown fields (CloudTrail adds fields with every ``eventVersion``) and accept the
shapes real recordings have: ``eventTime`` with a space instead of ``T``, string booleans, missing
``userIdentity`` or ``responseElements``. Nothing here trusts a field's *value*: ids are checked by
:mod:`amiguard.policy` before anything acts on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
# What CloudTrail records that a service did (not an API call): SharedSnapshotVolumeCreated, ...
CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE = "AWS Service Event via CloudTrail"
AMI_STATE_CHANGE_DETAIL_TYPE = "EC2 AMI State Change"


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SessionIssuer(_Input):
    type: str | None = None
    arn: str | None = None
    user_name: str | None = Field(None, alias="userName")
    account_id: str | None = Field(None, alias="accountId")


class SessionContext(_Input):
    session_issuer: SessionIssuer | None = Field(None, alias="sessionIssuer")
    source_identity: str | None = Field(None, alias="sourceIdentity")


class UserIdentity(_Input):
    """Who made the call, as CloudTrail records it (``Root``, ``IAMUser``, ``AssumedRole``, ``AWSService``...)."""

    type: str | None = None
    arn: str | None = None
    account_id: str | None = Field(None, alias="accountId")
    principal_id: str | None = Field(None, alias="principalId")
    user_name: str | None = Field(None, alias="userName")
    invoked_by: str | None = Field(None, alias="invokedBy")
    session_context: SessionContext | None = Field(None, alias="sessionContext")

    @property
    def issuer_arn(self) -> str | None:
        issuer = self.session_context.session_issuer if self.session_context else None
        return issuer.arn if issuer else None

    @property
    def source_identity(self) -> str | None:
        """The ``sourceIdentity`` the session was started with (it stays with every role it chains to)."""
        return self.session_context.source_identity if self.session_context else None

    @property
    def principal(self) -> str | None:
        """The human-meaningful principal: issuer role + session name for assumed roles, else the ARN."""
        if self.type == "AssumedRole" and self.issuer_arn and self.arn:
            session = self.arn.rsplit("/", 1)[-1]
            return f"{self.issuer_arn}/{session}"
        if self.arn:
            return self.arn
        if self.invoked_by:
            return self.invoked_by
        return self.principal_id


class CloudTrailRecord(_Input):
    """One CloudTrail management event: the ``detail`` of an "AWS API Call via CloudTrail" event."""

    event_version: str | None = Field(None, alias="eventVersion")
    event_id: str | None = Field(None, alias="eventID")
    event_time: datetime | None = Field(None, alias="eventTime")
    event_source: str = Field(alias="eventSource")
    event_name: str = Field(alias="eventName")
    aws_region: str = Field(alias="awsRegion")
    recipient_account_id: str | None = Field(None, alias="recipientAccountId")
    user_identity: UserIdentity | None = Field(None, alias="userIdentity")
    user_agent: str | None = Field(None, alias="userAgent")
    request_parameters: dict[str, Any] | None = Field(None, alias="requestParameters")
    response_elements: dict[str, Any] | None = Field(None, alias="responseElements")
    error_code: str | None = Field(None, alias="errorCode")
    error_message: str | None = Field(None, alias="errorMessage")
    event_type: str | None = Field(None, alias="eventType")  # AwsApiCall | AwsServiceEvent | ...
    service_event_details: dict[str, Any] | None = Field(None, alias="serviceEventDetails")

    @field_validator("event_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value) if value else None

    @property
    def params(self) -> dict[str, Any]:
        return self.request_parameters or {}

    @property
    def response(self) -> dict[str, Any]:
        return self.response_elements or {}

    @property
    def actor(self) -> str | None:
        return self.user_identity.principal if self.user_identity else None


class _EventBridgeEnvelope(_Input):
    version: str | None = None
    id: str | None = None
    source: str
    account: str | None = None
    time: datetime | None = None
    region: str | None = None
    resources: list[str] = Field(default_factory=list)

    @field_validator("time", mode="before")
    @classmethod
    def _tolerate_placeholder_time(cls, value: Any) -> Any:
        # AWS documentation examples carry "yyyy-mm-ddThh:mm:ssZ"; a bad timestamp is not worth a drop.
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
        return value

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value) if value else None


class _CloudTrailEnvelope(_EventBridgeEnvelope):
    """What both kinds of CloudTrail event share: the record, its account and its time."""

    detail: CloudTrailRecord

    @property
    def account_id(self) -> str | None:
        return self.detail.recipient_account_id or self.account

    @property
    def occurred_at(self) -> datetime | None:
        return self.detail.event_time or self.time


class CloudTrailEvent(_CloudTrailEnvelope):
    """An "AWS API Call via CloudTrail" event as EventBridge delivers it."""

    detail_type: Literal["AWS API Call via CloudTrail"] = Field(alias="detail-type")


class CloudTrailServiceEvent(_CloudTrailEnvelope):
    """An "AWS Service Event via CloudTrail" event: the record has ``serviceEventDetails``, no request."""

    detail_type: Literal["AWS Service Event via CloudTrail"] = Field(alias="detail-type")


class AmiStateChange(_Input):
    image_id: str = Field(alias="ImageId")
    state: str = Field(alias="State")
    request_id: str | None = Field(None, alias="RequestId")
    error_message: str | None = Field(None, alias="ErrorMessage")


class AmiStateChangeEvent(_EventBridgeEnvelope):
    """An "EC2 AMI State Change" event (``pending`` → ``available`` | ``failed`` | ``deregistered`` ...)."""

    detail_type: Literal["EC2 AMI State Change"] = Field(alias="detail-type")
    detail: AmiStateChange


# CloudTrail's eventType -> the detail-type EventBridge delivers the record with (an API call when absent).
_DETAIL_TYPES = {"AwsApiCall": CLOUDTRAIL_DETAIL_TYPE, "AwsServiceEvent": CLOUDTRAIL_SERVICE_EVENT_DETAIL_TYPE}


def wrap_cloudtrail_record(record: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """Wrap a bare CloudTrail record the way EventBridge delivers it (``resources`` is always empty): an
    ``AwsServiceEvent`` record as "AWS Service Event via CloudTrail", any other as "AWS API Call via CloudTrail"."""
    return {
        "version": "0",
        "id": event_id or str(record.get("eventID") or "00000000-0000-0000-0000-000000000000"),
        "detail-type": _DETAIL_TYPES.get(str(record.get("eventType")), CLOUDTRAIL_DETAIL_TYPE),
        "source": "aws." + str(record.get("eventSource", "ec2.amazonaws.com")).split(".", 1)[0],
        "account": record.get("recipientAccountId"),
        "time": record.get("eventTime"),
        "region": record.get("awsRegion"),
        "resources": [],
        "detail": record,
    }


SCHEDULED_EVENT_DETAIL_TYPE = "Scheduled Event"


class ScheduledEvent(_EventBridgeEnvelope):
    """The event an EventBridge schedule (``rate(1 hour)``) delivers; ``detail`` is empty."""

    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    detail: dict[str, Any] = Field(default_factory=dict)
