"""CloudTrail history: trail files in every shape S3, EventBridge and LookupEvents give, and LookupEvents paced."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
from botocore.stub import Stubber

from amiguard.aws.pacing import TokenBucket
from amiguard_cli.history import LOOKUP_PAGE_SIZE, lookup_events, read_files

RECORD = {
    "eventVersion": "1.08",
    "eventSource": "ec2.amazonaws.com",
    "eventName": "ModifyImageAttribute",
    "awsRegion": "us-east-1",
    "eventTime": "2026-11-01T10:00:00Z",
    "recipientAccountId": "123456789012",
    "requestParameters": {"imageId": "ami-0123456789abcdef0"},
}
START, END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)


def _write(path: Path, document: object, *, compress: bool = False) -> Path:
    data = json.dumps(document).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_trail_file_records_are_read_when_delivered_by_s3_plain_or_gzipped(tmp_path: Path) -> None:
    _write(tmp_path / "a.json", {"Records": [RECORD]})
    _write(tmp_path / "b.json.gz", {"Records": [RECORD, RECORD]}, compress=True)

    history = read_files([tmp_path])

    assert len(history.records) == 3 and not history.errors


def test_eventbridge_event_gives_its_record_with_the_envelopes_account_when_the_detail_lacks_it(
    tmp_path: Path,
) -> None:
    detail = {key: value for key, value in RECORD.items() if key != "recipientAccountId"}
    event = {"detail-type": "AWS API Call via CloudTrail", "account": "111122223333", "id": "e-1", "detail": detail}

    history = read_files([_write(tmp_path / "event.json", [event])])

    assert history.records[0]["recipientAccountId"] == "111122223333"
    assert history.records[0]["eventID"] == "e-1"


def test_lookup_events_output_gives_each_cloudtrail_event_when_saved_from_the_cli(tmp_path: Path) -> None:
    saved = {"Events": [{"EventId": "1", "CloudTrailEvent": json.dumps(RECORD)}]}

    history = read_files([_write(tmp_path / "lookup.json", saved)])

    assert history.records == [RECORD]


def test_file_named_gz_that_is_not_gzip_is_an_error_naming_it_when_others_still_read(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.json.gz", {"Records": [RECORD]})
    good = _write(tmp_path / "good.json", {"Records": [RECORD]})

    history = read_files([bad, good])

    assert [error.source for error in history.errors] == [str(bad)]
    assert "not gzip" in history.errors[0].message
    assert len(history.records) == 1


def test_truncated_gzip_and_broken_json_are_errors_when_read(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.json.gz"
    truncated.write_bytes(gzip.compress(json.dumps({"Records": [RECORD]}).encode())[:20])
    broken = tmp_path / "broken.json"
    broken.write_text('{"Records": [', encoding="utf-8")

    history = read_files([truncated, broken, tmp_path / "missing.json"])

    assert len(history.errors) == 3 and not history.records


def test_record_without_event_name_is_skipped_and_counted_when_read(tmp_path: Path) -> None:
    history = read_files([_write(tmp_path / "t.json", {"Records": [{"eventSource": "x"}, "text", RECORD]})])

    assert len(history.records) == 1
    assert history.skipped == {"no-eventName": 1, "not-a-record": 1}


class _Clock:
    """A virtual clock: sleeping advances it, so pacing is measured without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _page(count: int, token: str | None) -> dict[str, object]:
    events = [{"EventId": str(i), "CloudTrailEvent": json.dumps(RECORD)} for i in range(count)]
    return {"Events": events, **({"NextToken": token} if token else {})}


def _expected(name: str, token: str | None = None) -> dict[str, object]:
    expected: dict[str, object] = {
        "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}],
        "StartTime": START,
        "EndTime": END,
        "MaxResults": LOOKUP_PAGE_SIZE,
    }
    return expected | ({"NextToken": token} if token else {})


def test_lookup_follows_every_page_with_one_event_name_per_call_at_two_requests_a_second() -> None:
    client = boto3.client("cloudtrail", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    clock = _Clock()
    bucket = TokenBucket(capacity=1, rate=2.0, clock=clock, sleep=clock.sleep)
    with Stubber(client) as stub:
        stub.add_response("lookup_events", _page(50, "t1"), _expected("CreateImage"))
        stub.add_response("lookup_events", _page(3, None), _expected("CreateImage", "t1"))
        stub.add_response("lookup_events", _page(2, None), _expected("ModifyImageAttribute"))

        history = lookup_events(
            client,
            region="us-east-1",
            event_names=["ModifyImageAttribute", "CreateImage", "CreateImage"],
            start=START,
            end=END,
            bucket=bucket,
        )

        stub.assert_no_pending_responses()
    assert len(history.records) == 55 and not history.errors
    assert clock.now == 1.0  # three requests: the first at once, then one every half second


def test_lookup_in_a_region_that_refuses_is_an_error_naming_the_region_when_access_is_denied() -> None:
    client = boto3.client("cloudtrail", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("lookup_events", "AccessDeniedException", "not allowed", 400)

        history = lookup_events(
            client, region="eu-west-1", event_names=["CreateImage", "CopyImage"], start=START, end=END
        )

    assert [error.source for error in history.errors] == ["eu-west-1"]
    assert "AccessDeniedException" in history.errors[0].message


def test_window_reaches_back_since_now_and_is_capped_at_lookups_90_days_when_reading_lookup_events() -> None:
    import argparse

    from amiguard_cli.backtest.command import parse_window

    now = datetime(2026, 12, 1, tzinfo=UTC)
    args = argparse.Namespace(since="7d", start=None, end=None, files=None)

    assert parse_window(args, now) == (datetime(2026, 11, 24, tzinfo=UTC), now)
    args.since = "400d"
    assert parse_window(args, now)[0] == datetime(2026, 9, 2, tzinfo=UTC)


def test_window_rejects_a_start_after_its_end_and_a_bad_duration_when_given() -> None:
    import argparse

    import pytest

    from amiguard_cli.backtest.command import UsageError, parse_window

    now = datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(UsageError, match="not before"):
        parse_window(argparse.Namespace(since=None, start="2026-11-30", end="2026-11-01", files=None), now)
    with pytest.raises(UsageError, match="--since"):
        parse_window(argparse.Namespace(since="a week", start=None, end=None, files=None), now)
