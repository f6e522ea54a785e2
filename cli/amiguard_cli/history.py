"""CloudTrail history, for ``backtest`` and ``replay``: files (as S3 delivers them, or as EventBridge carries
records) and CloudTrail ``LookupEvents``.

A file holds ``{"Records": [...]}`` (S3 delivery), ``{"Events": [{"CloudTrailEvent": "..."}]}``
(LookupEvents output saved by the AWS CLI), one EventBridge event or a list of them, or one bare record or a list
of them; ``.json`` or ``.json.gz`` (gzip is recognised by its magic bytes, not by the name). An EventBridge event
that carries a CloudTrail record gives that record; one of another kind (an "EC2 AMI State Change") is kept as the
event it is, since no CloudTrail record holds it. A folder is read recursively, in name order. A file that cannot
be read is an error naming it; the other files are still read.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from amiguard.aws.errors import error_code
from amiguard.aws.pacing import TokenBucket
from amiguard.models.events import wrap_cloudtrail_record

GZIP_MAGIC = b"\x1f\x8b"
# LookupEvents: "two requests per second, per account, per region" (not adjustable); 50 events a page at most.
LOOKUP_RATE_PER_SECOND = 2.0
LOOKUP_PAGE_SIZE = 50
LOOKUP_RETENTION_DAYS = 90


@dataclass(frozen=True)
class SourceError:
    """A file or region that could not be read, and why (the rest of the history is still evaluated)."""

    source: str
    message: str


@dataclass
class History:
    """CloudTrail records (and EventBridge events no record holds), what could not be read, and what was skipped
    (reason -> count)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, items: Iterable[Any]) -> None:
        for item in items:
            if not isinstance(item, dict):
                self.skipped["not-a-record"] += 1
            elif _is_event(item):
                self.records.append(item)
            elif not isinstance(item.get("eventName"), str):
                self.skipped["no-eventName"] += 1
            else:
                self.records.append(item)

    def extend(self, other: History) -> None:
        self.records.extend(other.records)
        self.errors.extend(other.errors)
        self.skipped.update(other.skipped)


def _from_eventbridge(event: dict[str, Any]) -> Any:
    """The CloudTrail record an EventBridge event carries; the envelope's account and region fill gaps."""
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return detail
    record = dict(detail)
    if "recipientAccountId" not in record and isinstance(event.get("account"), str):
        record["recipientAccountId"] = event["account"]
    if "awsRegion" not in record and isinstance(event.get("region"), str):
        record["awsRegion"] = event["region"]
    if "eventID" not in record and isinstance(event.get("id"), str):
        record["eventID"] = event["id"]
    return record


def records_in(document: Any) -> Iterator[Any]:
    """Every CloudTrail record in a parsed file, whatever of the accepted shapes it has."""
    if isinstance(document, list):
        for item in document:
            yield from records_in(item) if isinstance(item, dict) and _is_container(item) else [_unwrap(item)]
    elif isinstance(document, dict) and _is_container(document):
        if isinstance(document.get("Records"), list):
            yield from (_unwrap(item) for item in document["Records"])
        else:
            for item in document.get("Events") or []:
                text = item.get("CloudTrailEvent") if isinstance(item, dict) else None
                yield json.loads(text) if isinstance(text, str) else item
    else:
        yield _unwrap(document)


def _is_container(document: dict[str, Any]) -> bool:
    return isinstance(document.get("Records"), list) or isinstance(document.get("Events"), list)


def _is_event(item: dict[str, Any]) -> bool:
    """An EventBridge event whose detail is not a CloudTrail record (an "EC2 AMI State Change")."""
    detail = item.get("detail")
    return "detail-type" in item and isinstance(detail, dict) and "eventName" not in detail


def _unwrap(item: Any) -> Any:
    if isinstance(item, dict) and "detail-type" in item and not _is_event(item):
        return _from_eventbridge(item)
    return item


def as_event(item: dict[str, Any]) -> dict[str, Any]:
    """One item of a :class:`History` as EventBridge delivers it: a record wrapped, an event as it is."""
    return item if _is_event(item) else wrap_cloudtrail_record(item)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz", ".gz")))
    return [path]


def read_file(path: Path) -> History:
    """The records of one file (or an error naming it)."""
    history = History()
    try:
        raw = path.read_bytes()
        if raw[:2] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
        elif path.name.endswith(".gz"):
            raise ValueError("named .gz but not gzip-compressed")
        history.add(records_in(json.loads(raw.decode("utf-8"))))
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        history.errors.append(SourceError(str(path), f"cannot read: {error}"))
    except UnicodeDecodeError:
        history.errors.append(SourceError(str(path), "not UTF-8 text"))
    except json.JSONDecodeError as error:
        history.errors.append(SourceError(str(path), f"not JSON: {error.msg} at line {error.lineno}"))
    except ValueError as error:
        history.errors.append(SourceError(str(path), str(error)))
    return history


def read_files(paths: Sequence[Path]) -> History:
    """Every record of every file (folders recursively); a path that does not exist is an error."""
    history = History()
    for path in paths:
        if not path.exists():
            history.errors.append(SourceError(str(path), "no such file or folder"))
            continue
        files = _files(path)
        if not files:
            history.errors.append(SourceError(str(path), "holds no .json or .json.gz file"))
        for file in files:
            history.extend(read_file(file))
    return history


def lookup_events(
    client: Any,
    *,
    region: str,
    event_names: Iterable[str],
    start: datetime,
    end: datetime,
    bucket: TokenBucket | None = None,
    on_page: Callable[[str, int], None] | None = None,
) -> History:
    """Management events of ``event_names`` in one region, one ``EventName`` filter per call (the API takes one
    attribute), every page, each request paced by ``bucket`` (2 per second: LookupEvents' fixed limit)."""
    bucket = bucket or TokenBucket(capacity=1, rate=LOOKUP_RATE_PER_SECOND)
    history = History()
    for name in sorted(set(event_names)):
        token: str | None = None
        try:
            while True:
                arguments: dict[str, Any] = {
                    "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}],
                    "StartTime": start,
                    "EndTime": end,
                    "MaxResults": LOOKUP_PAGE_SIZE,
                }
                if token:
                    arguments["NextToken"] = token
                bucket.take()
                page = client.lookup_events(**arguments)
                events = page.get("Events") or []
                history.add(_lookup_record(event) for event in events)
                if on_page:
                    on_page(name, len(events))
                token = page.get("NextToken")
                if not token:
                    break
        except ClientError as error:
            history.errors.append(SourceError(region, f"LookupEvents {name}: {error_code(error)}: {error}"))
            if error_code(error) in {"AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId"}:
                break  # the region refuses: every other name would too
        except BotoCoreError as error:
            history.errors.append(SourceError(region, f"LookupEvents {name}: {error}"))
            break
    return history


def _lookup_record(event: Any) -> Any:
    text = event.get("CloudTrailEvent") if isinstance(event, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
