"""Exceptions a reviewer can audit: a named, reasoned, dated "do not alert this" in the stack's configuration.

Kept in the ``Exceptions`` template parameter (``AMIGUARD_EXCEPTIONS``), a JSON list, never in a tag: only whoever
may deploy the stack can add one, every change is a CloudFormation change set (who, when, what), and a
malformed entry fails every function at start-up naming the entry. An exception names what it covers (one AMI
id, or the AMIs carrying a tag ``key=value``), optionally the finding types (default: every type), a reason and
an expiry date (inclusive, UTC). An excepted finding is recorded in the ledger as ``excepted`` and not
alerted; from the day after it expires, the finding alerts again.

An exception silences alerts only: remediation (revoking a public share, escalating a tag violation) is governed
by the settings that say so (``PublicAllowlist``, ``TrustedPrincipals``, ``TagEscalation``).
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from amiguard.models.findings import FindingType

IMAGE_ID = re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
EXCEPTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256


class FindingException(BaseModel):
    """One exception: ``{"name", "image" | "tag", "types"?, "reason", "expires"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=EXCEPTION_NAME.pattern)
    image: str | None = Field(None, pattern=IMAGE_ID.pattern)
    tag: str | None = Field(None, description="key=value: AMIs carrying this tag")
    types: tuple[FindingType, ...] = ()
    reason: str = Field(min_length=3, max_length=500)
    expires: date

    @model_validator(mode="after")
    def _one_target(self) -> FindingException:
        if (self.image is None) == (self.tag is None):
            raise ValueError("names exactly one of image (an AMI id) or tag (key=value)")
        if self.tag is not None:
            key, sep, value = self.tag.partition("=")
            if not sep or not key or len(key) > TAG_KEY_MAX or len(value) > TAG_VALUE_MAX:
                raise ValueError(f"tag {self.tag!r} is not key=value")
        return self

    @property
    def tag_pair(self) -> tuple[str, str] | None:
        if self.tag is None:
            return None
        key, _, value = self.tag.partition("=")
        return key, value

    def active_on(self, day: date) -> bool:
        return day <= self.expires

    def covers_type(self, finding_type: FindingType) -> bool:
        return not self.types or finding_type in self.types


def parse_exceptions(value: Any) -> tuple[FindingException, ...]:
    """A JSON list (or a list) of exceptions; a bad entry raises ``ValueError`` naming it (its name, or its place)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error.msg} at position {error.pos}") from error
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise ValueError("must be a JSON list of exceptions")
    parsed: list[FindingException] = []
    for index, entry in enumerate(value, start=1):
        if isinstance(entry, FindingException):
            parsed.append(entry)
            continue
        label = f"entry {index}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label += f" ({entry['name']!r})"
        try:
            parsed.append(FindingException.model_validate(entry))
        except ValidationError as error:
            issue = error.errors()[0]
            where = ".".join(str(part) for part in issue["loc"])
            message = str(issue["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{label}: {where + ': ' if where else ''}{message}") from None
    names = [entry.name for entry in parsed]
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"exception names must be unique: {', '.join(duplicated)}")
    return tuple(parsed)
