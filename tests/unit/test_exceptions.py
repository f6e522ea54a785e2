"""Exceptions: parsed and checked at start-up (a bad entry is named), matched by AMI id or current tag, dated."""

from __future__ import annotations

import json
from datetime import date

import pytest

from amiguard.models.exceptions import FindingException, parse_exceptions
from amiguard.models.findings import FindingType
from amiguard.models.settings import SettingsError, load_settings
from amiguard.policy.exceptions import covering_exception
from tests.factories import a_finding

FARM = {"name": "farm", "image": "ami-0123456789abcdef0", "reason": "build farm", "expires": "2027-01-31"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AMIGUARD_"):
            monkeypatch.delenv(key)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({**FARM, "image": "ami-1"}, "entry 1 ('farm'): image"),
        ({**FARM, "expires": "2027-02-30"}, "entry 1 ('farm'): expires"),
        ({k: v for k, v in FARM.items() if k != "reason"}, "entry 1 ('farm'): reason"),
        ({**FARM, "tag": "Team=research"}, "entry 1 ('farm'): names exactly one of image"),
        ({**FARM, "image": None, "tag": "Team"}, "entry 1 ('farm'): tag 'Team' is not key=value"),
        ({**FARM, "types": ["public-shares"]}, "entry 1 ('farm'): types.0"),
        ({**FARM, "approved": "me"}, "entry 1 ('farm'): approved"),
        ("farm", "entry 1: "),
    ],
)
def test_start_up_fails_naming_the_entry_when_an_exception_is_malformed(
    monkeypatch: pytest.MonkeyPatch, entry: object, problem: str
) -> None:
    monkeypatch.setenv("AMIGUARD_EXCEPTIONS", json.dumps([entry]))

    with pytest.raises(SettingsError, match="AMIGUARD_EXCEPTIONS") as raised:
        load_settings()

    assert problem in str(raised.value)


def test_start_up_fails_when_two_exceptions_share_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMIGUARD_EXCEPTIONS", json.dumps([FARM, FARM]))

    with pytest.raises(SettingsError, match="unique: farm"):
        load_settings()


def test_exceptions_are_read_when_well_formed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMIGUARD_EXCEPTIONS", json.dumps([FARM | {"types": ["missing-tags"]}]))

    [farm] = load_settings().exceptions

    assert farm.types == (FindingType.MISSING_TAGS,) and farm.expires == date(2027, 1, 31)
    assert load_settings(exceptions="").exceptions == ()


def test_exception_covers_its_ami_until_the_end_of_its_expiry_day_when_matched() -> None:
    farm = FindingException.model_validate(FARM)
    finding = a_finding()

    def no_tags() -> None:
        raise AssertionError("an id exception needs no tags")

    assert covering_exception(finding, [farm], today=date(2027, 1, 31), image_tags=no_tags) == (farm, [])
    assert covering_exception(finding, [farm], today=date(2027, 2, 1), image_tags=no_tags) == (None, [farm])
    other = a_finding(image_id="ami-00000000000000000")
    assert covering_exception(other, [farm], today=date(2027, 1, 1), image_tags=no_tags) == (None, [])


def test_tag_exception_covers_only_an_ami_carrying_the_tag_now_when_matched() -> None:
    lab = FindingException(
        name="lab", tag="Team=research", types=(FindingType.MISSING_TAGS,), reason="lab", expires=date(2027, 1, 1)
    )
    missing = a_finding(type=FindingType.MISSING_TAGS)
    today = date(2026, 12, 1)

    assert covering_exception(missing, [lab], today=today, image_tags=lambda: {"Team": "research"})[0] == lab
    assert covering_exception(missing, [lab], today=today, image_tags=lambda: {"Team": "payments"})[0] is None
    assert covering_exception(missing, [lab], today=today, image_tags=lambda: None)[0] is None  # AMI gone
    # a type it does not name, and a finding about no AMI, are never covered
    assert covering_exception(a_finding(), [lab], today=today, image_tags=lambda: {"Team": "research"})[0] is None
    regional = a_finding(type=FindingType.MISSING_TAGS, image_id=None)
    assert covering_exception(regional, [lab], today=today, image_tags=lambda: {"Team": "research"})[0] is None


def test_parse_accepts_parsed_entries_when_given_a_tuple() -> None:
    farm = FindingException.model_validate(FARM)

    assert parse_exceptions((farm,)) == (farm,)
