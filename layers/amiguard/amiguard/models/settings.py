"""The one settings model: every ``AMIGUARD_*`` environment variable, parsed and validated at start-up.

A plain pydantic model read from ``os.environ`` by :func:`load_settings`, not a pydantic-settings
``BaseSettings``: that package imports asyncio, argparse and its cloud sources on every cold start
(~40-60 ms of CPU, a third of amiguard's budget over the boto3 floor) for what is here a dictionary lookup.
"""

from __future__ import annotations

import json
import os
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from amiguard.models.exceptions import FindingException, parse_exceptions

ENV_PREFIX = "AMIGUARD_"

ACCOUNT_ID = re.compile(r"^\d{12}$")
ORGANIZATION_ID = re.compile(r"^o-[a-z0-9]{10,32}$")
ORGANIZATION_ARN = re.compile(r"^arn:aws[a-z-]*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}$")
OU_ARN = re.compile(r"^arn:aws[a-z-]*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$")
IMAGE_ID = re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d$")
SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:\S+$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
# Lambda function, EventBridge rule and IAM role names (their character sets but the comma that separates them).
RESOURCE_NAME = re.compile(r"^[A-Za-z0-9_.+=@-]{1,64}$")
RULE_ARN = re.compile(r"^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:rule/")
# A rule on a custom bus (organization mode's central bus) is named <bus>/<rule>, as its ARN ends.
BUS_RULE = re.compile(r"^[A-Za-z0-9_.-]{1,256}/[A-Za-z0-9_.-]{1,64}$")
TRAIL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,126}[A-Za-z0-9]$")
TRAIL_ARN = re.compile(r"^arn:aws[a-z-]*:cloudtrail:[a-z0-9-]+:\d{12}:trail/[A-Za-z0-9._-]{3,128}$")
SQS_QUEUE_URL = re.compile(r"^https://sqs\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/\d{12}/[A-Za-z0-9_-]{1,80}$")
KMS_KEY = re.compile(r"^(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key|alias)/\S+|alias/\S+|[0-9a-f-]{36})$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


class Mode(StrEnum):
    """``enforce`` remediates; ``audit`` detects and alerts only."""

    ENFORCE = "enforce"
    AUDIT = "audit"


class ReplicaCleanup(StrEnum):
    """What happens to DR replicas when their source AMI is deregistered."""

    DEPRECATE = "deprecate"  # replicas stay launchable by id but leave default listings
    DEREGISTER = "deregister"  # replicas and their snapshots are removed
    NONE = "none"  # replicas are kept as they are (an info finding says so)


class TagEscalation(StrEnum):
    """What happens to an AMI still violating the tag policy after ``TagGraceHours``."""

    NONE = "none"
    DEPRECATE = "deprecate"  # EnableImageDeprecation: still launchable by id, hidden from listings
    DISABLE = "disable"  # DisableImage: nobody can launch it until it is enabled again
    DEREGISTER = "deregister"  # DeregisterImage, snapshots kept


class StaleImageAction(StrEnum):
    """What happens to an AMI found ``ami-stale`` or ``ami-unused`` (never one that instances use)."""

    NONE = "none"  # report only
    DEPRECATE = "deprecate"  # EnableImageDeprecation: still launchable by id, hidden from listings


class SecurityHub(StrEnum):
    """Whether findings are also imported into AWS Security Hub (docs/security-hub.md)."""

    ENABLED = "enabled"
    DISABLED = "disabled"


TAG_KEY_MAX = 128


class TagRule(BaseModel):
    """What a required tag's value must satisfy (no rule: any non-empty value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed: tuple[str, ...] | None = None
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"invalid regular expression {value!r}: {error}") from error
        return value


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _json_object(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error.msg} at position {error.pos}") from error
    return value


class Settings(BaseModel):
    """amiguard's configuration. One template parameter per field; see docs/parameters.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Mode = Mode.ENFORCE
    required_tags: dict[str, TagRule] = Field(default_factory=lambda: {"Owner": TagRule(), "CostCenter": TagRule()})
    trusted_principals: tuple[str, ...] = ()
    public_allowlist: tuple[str, ...] = ()
    approval_tag: str = "amiguard:approved"
    dr_regions: tuple[str, ...] = ()
    dr_kms_keys: dict[str, str] = Field(default_factory=dict)
    replica_cleanup: ReplicaCleanup = ReplicaCleanup.DEPRECATE
    alert_topic_arn: str = ""
    ledger_table: str = ""
    slack_webhook_secret: str = ""
    tag_grace_hours: int = Field(72, ge=1, le=8760)
    tag_escalation: TagEscalation = TagEscalation.NONE
    inherit_tags: tuple[str, ...] = ()
    # The stack's own function roles (template.yaml, !GetAtt): CloudTrail calls made by them are amiguard's own.
    own_role_arns: tuple[str, ...] = ()
    # A finding found again by a sweep (a standing problem) is re-alerted at most this often.
    realert_hours: int = Field(168, ge=1, le=8760)
    # The stack's secret keying the alert dedup hash (amiguard.aws.ledger.dedup_hash).
    dedup_key_secret: str = ""
    # amiguard's own deployment, from the stack (names as CloudFormation made them): what tamper_guard watches
    # and the sweeper verifies. ``trail`` (parameter Trail) is the CloudTrail trail feeding EventBridge; empty:
    # every trail in the account counts as amiguard's.
    own_functions: tuple[str, ...] = ()
    own_rules: tuple[str, ...] = ()
    own_roles: tuple[str, ...] = ()
    trail: str = ""
    # Organization mode (parameter OrganizationId): the organization the stack governs; empty: this account only.
    organization_id: str = ""
    # Image lifecycle checks (0: off): an AMI older than this many days with no deprecation time is
    # ``ami-stale``; one not launched for this many days is ``ami-unused``; StaleImageAction says what is done.
    max_image_age_days: int = Field(0, ge=0, le=36500)
    unused_image_days: int = Field(0, ge=0, le=36500)
    stale_image_action: StaleImageAction = StaleImageAction.NONE
    # Every finding also imported into Security Hub in its AMI's account and region (BatchImportFindings).
    security_hub: SecurityHub = SecurityHub.DISABLED
    # Reviewed exceptions (parameter Exceptions, JSON): findings they cover are recorded, not alerted.
    exceptions: tuple[FindingException, ...] = ()

    @field_validator("exceptions", mode="before")
    @classmethod
    def _parse_exceptions(cls, value: Any) -> Any:
        return parse_exceptions(value)
    # Organization mode: the stack's SweepQueue, one message per account to sweep (the sweeper sends and works them).
    sweep_queue_url: str = ""

    @field_validator("required_tags", mode="before")
    @classmethod
    def _parse_required_tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                parsed = _json_object(text)
                return {key: (rule or {}) for key, rule in parsed.items()}
            return {key: {} for key in _comma_list(text)}
        return value

    @field_validator("required_tags")
    @classmethod
    def _no_amiguard_keys(cls, value: dict[str, TagRule]) -> dict[str, TagRule]:
        for key in value:
            if key.startswith("amiguard:") or not key or len(key) > TAG_KEY_MAX:
                raise ValueError(f"{key!r} cannot be a required tag (empty, too long, or amiguard's own prefix)")
        return value

    @field_validator("inherit_tags", mode="before")
    @classmethod
    def _parse_inherit_tags(cls, value: Any) -> Any:
        keys = _comma_list(value)
        for key in keys:
            if key.startswith("amiguard:") or len(key) > TAG_KEY_MAX:
                raise ValueError(f"{key!r} cannot be inherited (too long, or amiguard's own prefix)")
        return keys

    @field_validator("own_functions", "own_roles", mode="before")
    @classmethod
    def _parse_names(cls, value: Any) -> Any:
        names = _comma_list(value)
        for name in names:
            if not RESOURCE_NAME.match(name):
                raise ValueError(f"{name!r} is not a function or role name")
        return names

    @field_validator("own_rules", mode="before")
    @classmethod
    def _parse_rules(cls, value: Any) -> Any:
        # The template passes rule ARNs (GetAtt Arn); a rule of the default bus is named by its last part.
        # A rule of a custom bus (organization mode's central bus) is <bus>/<rule>, as its ARN ends.
        names = tuple(RULE_ARN.sub("", item) for item in _comma_list(value))
        for name in names:
            if not (RESOURCE_NAME.match(name) or BUS_RULE.match(name)):
                raise ValueError(f"{name!r} is not an EventBridge rule name or ARN")
        return names

    @field_validator("organization_id")
    @classmethod
    def _organization_id(cls, value: str) -> str:
        if value and not ORGANIZATION_ID.match(value):
            raise ValueError(f"{value!r} is not an AWS Organizations id (o- and 10 to 32 lowercase letters or digits)")
        return value

    @field_validator("trail")
    @classmethod
    def _trail_name_or_arn(cls, value: str) -> str:
        if value and not (TRAIL_NAME.match(value) or TRAIL_ARN.match(value)):
            raise ValueError(f"{value!r} is not a CloudTrail trail name or ARN")
        return value

    @field_validator("sweep_queue_url")
    @classmethod
    def _sweep_queue_url(cls, value: str) -> str:
        if value and not SQS_QUEUE_URL.match(value):
            raise ValueError(f"{value!r} is not an SQS queue URL")
        return value

    @field_validator("trusted_principals", mode="before")
    @classmethod
    def _parse_principals(cls, value: Any) -> Any:
        principals = _comma_list(value)
        for principal in principals:
            if not (ACCOUNT_ID.match(principal) or ORGANIZATION_ARN.match(principal) or OU_ARN.match(principal)):
                raise ValueError(f"{principal!r} is not a 12-digit account id, organization ARN or OU ARN")
        return principals

    @field_validator("own_role_arns", mode="before")
    @classmethod
    def _parse_role_arns(cls, value: Any) -> Any:
        roles = _comma_list(value)
        for role in roles:
            if not ROLE_ARN.match(role):
                raise ValueError(f"{role!r} is not an IAM role ARN")
        return roles

    @field_validator("public_allowlist", mode="before")
    @classmethod
    def _parse_allowlist(cls, value: Any) -> Any:
        images = _comma_list(value)
        for image in images:
            if not IMAGE_ID.match(image):
                raise ValueError(f"{image!r} is not an AMI id (ami- and 8 or 17 hex digits)")
        return images

    @field_validator("dr_regions", mode="before")
    @classmethod
    def _parse_regions(cls, value: Any) -> Any:
        regions = _comma_list(value)
        for region in regions:
            if not REGION.match(region):
                raise ValueError(f"{region!r} is not an AWS region name")
        return regions

    @field_validator("dr_kms_keys", mode="before")
    @classmethod
    def _parse_kms_keys(cls, value: Any) -> Any:
        keys = _json_object(value)
        if not isinstance(keys, dict):
            raise ValueError("must be a JSON object of region to KMS key ARN or alias")
        for region, key in keys.items():
            if not REGION.match(str(region)):
                raise ValueError(f"{region!r} is not an AWS region name")
            if not isinstance(key, str) or not KMS_KEY.match(key):
                raise ValueError(f"{key!r} (for {region}) is not a KMS key ARN, key id or alias")
        return keys

    @field_validator("dr_kms_keys")
    @classmethod
    def _kms_key_in_its_region(cls, value: dict[str, str]) -> dict[str, str]:
        # CopyImage needs a key in the destination region: an ARN naming another region can never work.
        for region, key in value.items():
            if key.startswith("arn:") and key.split(":")[3] != region:
                raise ValueError(f"the key for {region} is in {key.split(':')[3]}: a DR key must be in its own region")
        return value

    @field_validator("approval_tag")
    @classmethod
    def _approval_tag_is_a_key(cls, value: str) -> str:
        if not value or len(value) > 128:
            raise ValueError("must be a tag key of 1 to 128 characters")
        return value

    @field_validator("alert_topic_arn")
    @classmethod
    def _topic_arn(cls, value: str) -> str:
        if value and not SNS_TOPIC_ARN.match(value):
            raise ValueError(f"{value!r} is not an SNS topic ARN")
        return value

    @field_validator("slack_webhook_secret", "dedup_key_secret")
    @classmethod
    def _secret_arn(cls, value: str) -> str:
        if value and not SECRET_ARN.match(value):
            raise ValueError(f"{value!r} is not a Secrets Manager secret ARN")
        return value

    def require(self, *fields: str) -> Settings:
        """Fail at start-up, naming the variable, when a function needs a setting that is empty."""
        missing = [variable(field) for field in fields if not getattr(self, field)]
        if missing:
            raise SettingsError(f"invalid amiguard settings: {', '.join(missing)}: required by this function, empty")
        return self

    @property
    def enforcing(self) -> bool:
        return self.mode is Mode.ENFORCE

    @property
    def organization(self) -> bool:
        """Organization mode: every account is acted on through its amiguard member role."""
        return bool(self.organization_id)


def variable(field: str) -> str:
    """The environment variable behind a settings field: ``dr_regions`` -> ``AMIGUARD_DR_REGIONS``."""
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; raise :class:`SettingsError` naming every bad variable.

    Only the ``AMIGUARD_*`` variables of a field are read; keyword ``overrides`` win over them.
    """
    values: dict[str, Any] = {
        field: os.environ[variable(field)] for field in Settings.model_fields if variable(field) in os.environ
    }
    try:
        return Settings.model_validate(values | overrides)
    except ValidationError as error:
        problems = []
        for issue in error.errors():
            field = str(issue["loc"][0]) if issue["loc"] else "?"
            problems.append(f"{variable(field)}: {str(issue['msg']).removeprefix('Value error, ')}")
        raise SettingsError("invalid amiguard settings: " + "; ".join(problems)) from None
