"""``amiguard backtest --file``: recorded history through template.yaml's routing and the functions' policy."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from amiguard_cli.main import main
from tests.samples import SAMPLES, all_sample_names

ACCOUNT = "123456789012"
STRANGER = "999988887777"
IMAGE = "ami-0123456789abcdef0"
BOB = {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/bob", "accountId": ACCOUNT}


def record(name: str, params: dict[str, Any], *, time: str = "2026-11-01T10:00:00Z", **extra: Any) -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "eventSource": "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "eventTime": time,
        "eventID": f"{name}-{time}",
        "recipientAccountId": ACCOUNT,
        "userIdentity": BOB,
        "requestParameters": params,
        "responseElements": extra.pop("response", {"_return": True}),
        **extra,
    }


def share(image: str, **grant: str) -> dict[str, Any]:
    return {"imageId": image, "launchPermission": {"add": {"items": [grant]}}, "attributeType": "launchPermission"}


def tags(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"items": [{"key": key, "value": value} for key, value in pairs]}


def create_image(image: str, *pairs: tuple[str, str], time: str = "2026-11-01T09:00:00Z") -> dict[str, Any]:
    params: dict[str, Any] = {"instanceId": "i-0123456789abcdef0", "name": "golden"}
    if pairs:
        params["tagSpecificationSet"] = {"items": [{"resourceType": "image", "tags": tags(*pairs)["items"]}]}
    return record("CreateImage", params, time=time, response={"imageId": image})


def create_tags(image: str, *pairs: tuple[str, str], time: str = "2026-11-01T11:00:00Z") -> dict[str, Any]:
    return record("CreateTags", {"resourcesSet": {"items": [{"resourceId": image}]}, "tagSet": tags(*pairs)}, time=time)


def trail(tmp_path: Path, *records: dict[str, Any], name: str = "trail.json.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(json.dumps({"Records": list(records)}).encode()))
    return path


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["backtest", "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads the user's AMIGUARD_* variables, as the stack's would be: start from none."""
    for key in [key for key in __import__("os").environ if key.startswith("AMIGUARD_")]:
        monkeypatch.delenv(key)


def test_recorded_samples_yield_the_revocation_and_tagging_amiguard_would_have_done_when_run_as_a_trail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = [json.loads((SAMPLES / name).read_text()) for name in all_sample_names()]
    folder = tmp_path / "AWSLogs"
    folder.mkdir()
    for index, sample in enumerate(samples):  # as EventBridge delivered them or as CloudTrail wrote them
        (folder / f"{index:02d}.json").write_text(
            json.dumps(sample if "detail-type" in sample else {"Records": [sample]})
        )

    code, report = backtest(capsys, "--file", str(folder))

    decided = sorted((d["finding"], d["resource"], d["action"]) for d in report["decisions"])
    assert decided == [
        ("missing-tags", "ami-00339be3aeeb7ac2d", "tagged"),  # CopyImage, recorded in the destination region
        ("missing-tags", "ami-0528b3966f95526ee", "tagged"),
        ("missing-tags", "ami-06aaf5e4b77161786", "tagged"),
        ("public-share", "ami-02b466201cbf1b617", "revoked"),
    ]
    assert code == 1
    skipped = report["summary"]["skipped"]
    assert skipped["not-routed"] >= 2  # failed calls match no rule (errorCode must not exist): they changed nothing
    assert skipped["malformed-event"] >= 1  # anonymised ids and fake regions are never acted on


def test_public_share_would_be_revoked_and_removal_yields_nothing_when_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    removal = {"imageId": IMAGE, "launchPermission": {"remove": {"items": [{"group": "all"}]}}}
    path = trail(
        tmp_path, record("ModifyImageAttribute", share(IMAGE, group="all")), record("ModifyImageAttribute", removal)
    )

    code, report = backtest(capsys, "--file", str(path))

    [decision] = report["decisions"]
    assert (decision["finding"], decision["severity"], decision["action"]) == ("public-share", "critical", "revoked")
    assert (
        decision["actor"] == BOB["arn"]
        and decision["account"] == ACCOUNT
        and decision["event"] == "ModifyImageAttribute"
    )
    assert code == 1


def test_audit_mode_says_would_revoke_when_the_stack_settings_say_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMIGUARD_MODE", "audit")

    _, report = backtest(
        capsys, "--file", str(trail(tmp_path, record("ModifyImageAttribute", share(IMAGE, group="all"))))
    )

    assert [d["action"] for d in report["decisions"]] == ["would-revoke"]


def test_share_with_an_account_is_untrusted_unless_the_what_if_trusts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = trail(tmp_path, record("ModifyImageAttribute", share(IMAGE, userId=STRANGER)))

    _, untrusted = backtest(capsys, "--file", str(path))
    code, trusted = backtest(capsys, "--file", str(path), "--trusted-principals", STRANGER)

    assert [d["finding"] for d in untrusted["decisions"]] == ["untrusted-share"]
    assert trusted["decisions"] == [] and code == 0


def test_new_ami_is_compliant_when_later_create_tags_in_the_same_history_add_the_required_tags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = trail(tmp_path, create_tags(IMAGE, ("Owner", "bob"), ("CostCenter", "cc-1")), create_image(IMAGE))

    code, report = backtest(capsys, "--file", str(path))  # out of order in the file: time order decides

    assert report["decisions"] == [] and code == 0


def test_deleted_required_tag_on_an_older_ami_is_flagged_when_the_history_shows_the_delete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    delete = record("DeleteTags", {"resourcesSet": {"items": [{"resourceId": IMAGE}]}, "tagSet": tags(("Owner", ""))})

    _, report = backtest(capsys, "--file", str(trail(tmp_path, delete)))

    [decision] = report["decisions"]
    assert (
        decision["finding"] == "missing-tags"
        and "Owner" in decision["summary"]
        and "CostCenter" not in decision["summary"]
    )


def test_what_if_required_tags_change_the_verdict_when_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = trail(tmp_path, create_image(IMAGE, ("Owner", "bob")))

    _, default = backtest(capsys, "--file", str(path))
    _, relaxed = backtest(capsys, "--file", str(path), "--required-tags", "Owner")

    assert [d["finding"] for d in default["decisions"]] == ["missing-tags"] and relaxed["decisions"] == []


def test_approval_would_copy_to_each_dr_region_once_when_replication_is_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMIGUARD_DR_REGIONS", "us-west-2,eu-west-1")
    approve = create_tags(IMAGE, ("amiguard:approved", "true"))
    again = create_tags(IMAGE, ("amiguard:approved", "TRUE"), time="2026-11-02T11:00:00Z")
    path = trail(tmp_path, create_image(IMAGE, ("Owner", "bob"), ("CostCenter", "c")), approve, again)

    _, report = backtest(capsys, "--file", str(path))

    copies = sorted(d["resource"] for d in report["decisions"] if d["finding"] == "replication-started")
    assert copies == [f"{IMAGE}->eu-west-1", f"{IMAGE}->us-west-2"]


def test_amiguards_own_calls_yield_nothing_when_in_the_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard-PublicGuardRole-0A1B2C3D4E5F"
    monkeypatch.setenv("AMIGUARD_OWN_ROLE_ARNS", role)  # the stack's role ARNs, as its functions get them
    own = {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/amiguard-public-guard/public_guard",
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role}},
    }

    code, report = backtest(
        capsys,
        "--file",
        str(trail(tmp_path, record("ModifyImageAttribute", share(IMAGE, group="all"), userIdentity=own))),
    )

    assert report["decisions"] == [] and report["summary"]["skipped"] == {"amiguard-own-action": 1} and code == 0


def test_other_services_events_and_unicode_yield_nothing_when_the_trail_holds_only_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = {**record("GetObject", {"key": "ünïcødé/🔑"}), "eventSource": "s3.amazonaws.com"}

    code, report = backtest(capsys, "--file", str(trail(tmp_path, s3, s3)))

    assert report["decisions"] == [] and report["summary"]["skipped"] == {"not-routed": 2} and code == 0


def test_hundred_thousand_records_are_evaluated_when_one_file_holds_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noise = [{**record("DescribeImages", {}), "readOnly": True}] * 99_999
    path = trail(tmp_path, *noise, record("ModifyImageAttribute", share(IMAGE, group="all")))

    code, report = backtest(capsys, "--file", str(path))

    assert report["summary"]["records"] == 100_000 and len(report["decisions"]) == 1 and code == 1


def test_unreadable_file_is_named_and_exit_is_2_when_nothing_else_would_act(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake.json.gz"
    fake.write_text("not gzip", encoding="utf-8")

    code = main(["backtest", "--file", str(fake), "--format", "json"])

    captured = capsys.readouterr()
    assert code == 2 and str(fake) in captured.err and "not gzip" in captured.err


def test_unreadable_file_does_not_hide_what_the_others_show_when_one_would_act(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake.json.gz"
    fake.write_text("not gzip", encoding="utf-8")
    good = trail(tmp_path, record("ModifyImageAttribute", share(IMAGE, group="all")))

    code, report = backtest(capsys, "--file", str(fake), "--file", str(good))

    assert code == 1 and len(report["decisions"]) == 1 and report["errors"][0]["source"] == str(fake)


def test_csv_and_table_reports_list_each_decision_when_written_to_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = trail(tmp_path, record("ModifyImageAttribute", share(IMAGE, group="all")))

    main(["backtest", "--file", str(path), "--format", "csv", "--output", str(tmp_path / "out.csv")])
    main(["backtest", "--file", str(path), "--output", str(tmp_path / "out.txt")])

    rows = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("time,account,region,actor,event,resource,finding") and IMAGE in rows[1]
    table = (tmp_path / "out.txt").read_text(encoding="utf-8")
    assert IMAGE in table and "by actor" in table and "1 public-share" in capsys.readouterr().err


def test_bad_output_path_and_bad_setting_are_one_line_errors_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = trail(tmp_path, record("ModifyImageAttribute", share(IMAGE, group="all")))

    bad_output = main(["backtest", "--file", str(path), "--output", str(tmp_path / "no" / "such" / "dir.txt")])
    first = capsys.readouterr().err
    monkeypatch.setenv("AMIGUARD_MODE", "fix-everything")
    bad_setting = main(["backtest", "--file", str(path)])
    second = capsys.readouterr().err

    assert bad_output == 2 and first.startswith("amiguard: error: --output") and "Traceback" not in first
    assert bad_setting == 2 and "AMIGUARD_MODE" in second and "Traceback" not in second


def test_replay_runs_every_record_of_a_trail_file_through_the_handlers_when_given_one(tmp_path: Path) -> None:
    from amiguard_cli.sandbox.replay import replay

    path = trail(tmp_path, record("ModifyImageAttribute", share(IMAGE, group="all")), name="replay.json.gz")

    result = replay(path, enforce=True)

    assert [alert.message["type"] for alert in result.alerts] == ["public-share"]
    assert result.seeded == [IMAGE]


def test_lookup_asks_for_each_routed_event_name_in_each_region_when_reading_cloudtrail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse
    from datetime import UTC, datetime

    import boto3
    from botocore.stub import ANY, Stubber

    from amiguard_cli.backtest.command import lookup_history, routed_event_names
    from amiguard_cli.sandbox.cfn import event_routes, load_template
    from tests.samples import ROOT

    routes = event_routes(load_template(ROOT / "template.yaml"))
    names = routed_event_names(routes)
    stubs: list[Stubber] = []

    class Session:
        region_name = "us-east-1"

        def client(self, service: str, region_name: str, **_: Any) -> Any:
            client = boto3.client(service, region_name=region_name, aws_access_key_id="x", aws_secret_access_key="x")
            stub = Stubber(client)
            for name in names:
                events = [{"CloudTrailEvent": json.dumps({**record(name, {}), "awsRegion": region_name})}]
                attributes = [{"AttributeKey": "EventName", "AttributeValue": name}]
                expected = {"LookupAttributes": attributes, "StartTime": ANY, "EndTime": ANY, "MaxResults": 50}
                stub.add_response("lookup_events", {"Events": events}, expected)
            stub.activate()
            stubs.append(stub)
            return client

    args = argparse.Namespace(regions="us-east-1,eu-west-1,not-a-region", all_regions=False)
    history = lookup_history(
        args, Session(), routes, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    )

    assert {"ModifyImageAttribute", "CreateImage", "CreateTags", "DisableImageBlockPublicAccess"} <= set(names)
    for stub in stubs:
        stub.assert_no_pending_responses()
    assert sorted({r["awsRegion"] for r in history.records}) == ["eu-west-1", "us-east-1"]
    assert len(history.records) == 2 * len(names)
    assert [error.source for error in history.errors] == ["not-a-region"]


def test_a_role_that_only_looks_like_amiguards_is_not_its_own_when_in_the_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMIGUARD_OWN_ROLE_ARNS", f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard-PublicGuardRole-0A1B")
    lookalike = f"arn:aws:iam::{ACCOUNT}:role/amiguard/amiguard-public-guard"
    identity = {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": "Role", "arn": lookalike}}}
    path = trail(tmp_path, record("ModifyImageAttribute", share(IMAGE, group="all"), userIdentity=identity))

    code, report = backtest(capsys, "--file", str(path))

    assert [d["finding"] for d in report["decisions"]] == ["public-share"] and code == 1
