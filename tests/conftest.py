"""Shared fixtures: a sandbox account with amiguard deployed from template.yaml."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

TRUSTED_PARTNER = "222233334444"
STRANGER = "999988887777"
# The default RequiredTags: an AMI baked with these is compliant, so tag_enforcer stays quiet about it.
OWNERSHIP_TAGS = [{"Key": "Owner", "Value": "bob@example.com"}, {"Key": "CostCenter", "Value": "cc-1234"}]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """amiguard in enforce mode, trusting one partner account."""
    with Sandbox(parameters={"Mode": "enforce", "TrustedPrincipals": TRUSTED_PARTNER}) as sb:
        yield sb


def bake_image(sb: Sandbox, name: str = "golden-base", region: str | None = None) -> dict[str, Any]:
    """A tagged AMI owned by the account (made by a developer; the calls are recorded in CloudTrail)."""
    ec2 = sb.client("ec2", region)
    with acting_as(iam_user("dev-bob")):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        tagged = [{"ResourceType": "image", "Tags": OWNERSHIP_TAGS}]
        image_id = ec2.create_image(InstanceId=instance, Name=name, TagSpecifications=tagged)["ImageId"]
    image: dict[str, Any] = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    return image


# --- the fault-injection suite's table (tests/integration/test_faults.py) ----------------------------------
# Each case records its verdict as a user property; under xdist the reports carry it to the controller, which
# prints the table whether or not -s is given, and writes it to .faults-report.json.
_FAULT_CASES: list[dict[str, Any]] = []
VERDICTS = ("right", "lost", "duplicated", "wrong")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _FAULT_CASES.extend(value for name, value in report.user_properties if name == "fault_case")  # type: ignore[misc]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _FAULT_CASES:
        return
    rows: dict[str, dict[str, int]] = {}
    for case in _FAULT_CASES:
        row = rows.setdefault(case["function"], dict.fromkeys(("cases", *VERDICTS), 0))
        row["cases"] += 1
        row[case["verdict"]] += 1
    total = {key: sum(row[key] for row in rows.values()) for key in ("cases", *VERDICTS)}
    write = terminalreporter.write_line
    terminalreporter.section("fault injection: nothing lost, nothing twice")
    write(f"{'function':<16}{'cases':>7}" + "".join(f"{v:>12}" for v in VERDICTS))
    for function, row in [*sorted(rows.items()), ("all", total)]:
        write(f"{function:<16}{row['cases']:>7}" + "".join(f"{row[v]:>12}" for v in VERDICTS))
    for case in _FAULT_CASES:
        if case["verdict"] != "right":
            write(f"  {case['verdict']}: {case['case']}")
    report = {"totals": total, "functions": rows, "cases": _FAULT_CASES}
    (config.rootpath / ".faults-report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
