"""The ledger's keys, built in one place (amiguard.models.ledger_keys)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from amiguard.models.ledger_keys import day_key, day_key_of, image_pk, posted_pk, replica_sk, violations_pk


def test_day_key_is_the_utc_day_when_given_a_time_or_a_day() -> None:
    evening_in_new_york = datetime(2026, 12, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))

    assert day_key(evening_in_new_york) == "DAY#2026-12-02"
    assert day_key(date(2026, 12, 1)) == "DAY#2026-12-01"
    assert day_key_of("2026-12-01T23:30:00.000000Z") == day_key(datetime(2026, 12, 1, 23, 30, tzinfo=UTC))


def test_an_amis_findings_and_replicas_share_its_partition_when_keyed() -> None:
    assert image_pk("us-east-1", "ami-0123456789abcdef0") == "IMAGE#us-east-1#ami-0123456789abcdef0"
    assert replica_sk("eu-west-1") == "REPLICA#eu-west-1"
    assert violations_pk("123456789012", "us-east-1") == "VIOLATIONS#123456789012#us-east-1"
    assert posted_pk("IMAGE#r#ami-1#FINDING#t").startswith("POSTED#")
