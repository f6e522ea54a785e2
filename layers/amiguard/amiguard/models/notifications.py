"""SNS notifications as Lambda receives them (``{"Records": [{"EventSource": "aws:sns", "Sns": {...}}]}``).

Input models: unknown fields are ignored. SNS invokes a subscribed function with exactly one record; the
notifier still handles every record it is given.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SnsMessageAttribute(_Input):
    type: str = Field(alias="Type")
    value: str = Field(alias="Value")


class SnsMessage(_Input):
    message_id: str | None = Field(None, alias="MessageId")
    topic_arn: str | None = Field(None, alias="TopicArn")
    subject: str | None = Field(None, alias="Subject")
    message: str = Field(alias="Message")
    timestamp: str | None = Field(None, alias="Timestamp")
    message_attributes: dict[str, SnsMessageAttribute] = Field(default_factory=dict, alias="MessageAttributes")


class SnsRecord(_Input):
    event_source: Literal["aws:sns"] = Field(alias="EventSource")
    event_subscription_arn: str | None = Field(None, alias="EventSubscriptionArn")
    sns: SnsMessage = Field(alias="Sns")


class SnsEvent(_Input):
    records: list[SnsRecord] = Field(alias="Records", min_length=1)
