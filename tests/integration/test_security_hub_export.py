"""The Security Hub adapter and its place on the alert path: ASFF shapes, closing with BatchUpdateFindings (moto
lacks it: botocore Stubber), limits, and an alert never lost because Security Hub failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from amiguard.aws.clients import ClientFactory
from amiguard.aws.ledger import AlertState, DynamoLedger
from amiguard.aws.securityhub import FINDING_LIMIT, OMITTED, HubOutcome, SecurityHubExport, asff, finding_id
from amiguard.models.exceptions import FindingException
from amiguard.models.findings import Action, FindingType, Severity
from amiguard.services.alerting import LedgeredAlerts
from amiguard.services.ports import AlertResult
from amiguard_cli.sandbox.cfn import load_template, table_definition
from tests.factories import a_finding
from tests.integration.test_ledger import TEMPLATE, RecordingSns

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ARN = "arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default"
IMPORTED = {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []}


@pytest.fixture
def hub_client() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("securityhub", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoLedger]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        definition = table_definition(load_template(TEMPLATE), "LedgerTable")
        assert definition is not None
        client.create_table(TableName="ledger", **definition)
        yield DynamoLedger(client, "ledger", clock=lambda: NOW, dedup_key=lambda: b"k")


def _export(client: Any) -> SecurityHubExport:
    return SecurityHubExport(lambda _account, _region: client, clock=lambda: NOW)


def test_revoked_share_is_imported_passed_then_resolved_when_exported(hub_client: tuple[Any, Stubber]) -> None:
    client, stubber = hub_client
    finding = a_finding()
    expected_id = f"amiguard/123456789012/us-east-1/{finding.image_id}/public-share"
    stubber.add_response("batch_import_findings", IMPORTED, {"Findings": ANY})
    stubber.add_response(
        "batch_update_findings",
        {"ProcessedFindings": [{"Id": expected_id, "ProductArn": ARN}], "UnprocessedFindings": []},
        {
            "FindingIdentifiers": [{"Id": expected_id, "ProductArn": ARN}],
            "Workflow": {"Status": "RESOLVED"},
            "Note": ANY,
        },
    )

    assert _export(client).export(finding) is HubOutcome.CLOSED


def test_resolved_violation_closes_only_the_findings_security_hub_holds_when_exported(
    hub_client: tuple[Any, Stubber],
) -> None:
    client, stubber = hub_client
    resolved = a_finding(type=FindingType.RESOLVED, severity=Severity.INFO, action=Action.TAGGED, evidence={})
    missing = finding_id(resolved, FindingType.MISSING_TAGS)
    # Given Security Hub holds the missing-tags finding only (never an invalid-tags or escalated one)
    stubber.add_response(
        "batch_update_findings",
        {
            "ProcessedFindings": [{"Id": missing, "ProductArn": ARN}],
            "UnprocessedFindings": [
                {
                    "FindingIdentifier": {"Id": finding_id(resolved, kind), "ProductArn": ARN},
                    "ErrorCode": "FindingNotFound",
                    "ErrorMessage": "not found",
                }
                for kind in (FindingType.INVALID_TAGS, FindingType.ESCALATED)
            ],
        },
        {"FindingIdentifiers": ANY, "Workflow": {"Status": "RESOLVED"}, "Note": ANY},
    )
    imported: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.securityhub.BatchImportFindings", lambda params, **_: imported.extend(params["Findings"])
    )
    stubber.add_response("batch_import_findings", IMPORTED, {"Findings": ANY})

    # When the resolution is exported
    outcome = _export(client).export(resolved)

    # Then only that finding is imported again, PASSED, under its own id and generator
    assert outcome is HubOutcome.CLOSED
    assert [(f["Id"], f["GeneratorId"], f["Compliance"]["Status"]) for f in imported] == [
        (missing, "amiguard/missing-tags", "PASSED")
    ]


def test_excepted_finding_is_imported_and_suppressed_with_the_exception_when_exported(
    hub_client: tuple[Any, Stubber],
) -> None:
    client, stubber = hub_client
    finding = a_finding(type=FindingType.MISSING_TAGS, severity=Severity.MEDIUM, action=Action.TAGGED)
    exception = FindingException(name="farm", image=finding.image_id, reason="build farm", expires=date(2027, 1, 31))
    stubber.add_response("batch_import_findings", IMPORTED, {"Findings": ANY})
    stubber.add_response(
        "batch_update_findings",
        {"ProcessedFindings": [{"Id": finding_id(finding), "ProductArn": ARN}], "UnprocessedFindings": []},
        {
            "FindingIdentifiers": [{"Id": finding_id(finding), "ProductArn": ARN}],
            "Workflow": {"Status": "SUPPRESSED"},
            "Note": {"Text": "excepted by farm until 2027-01-31: build farm", "UpdatedBy": "amiguard"},
        },
    )

    assert _export(client).export(finding, excepted=exception) is HubOutcome.SUPPRESSED


def test_id_is_stable_when_the_same_problem_is_found_again() -> None:
    first = a_finding()
    again = a_finding(event_id="another", evidence={"grants": ["group:all", "111122223333"]}, detected_at=NOW)

    assert finding_id(first) == finding_id(again)
    assert finding_id(first) != finding_id(a_finding(type=FindingType.UNTRUSTED_SHARE))
    assert finding_id(first) != finding_id(a_finding(region="eu-west-1"))


def test_evidence_is_cut_with_a_count_when_it_would_exceed_240_kb() -> None:
    # Given a finding with half a megabyte of evidence and a unicode AMI name
    principals = [f"{n:012d}" for n in range(40_000)]
    finding = a_finding(evidence={"untrusted_principals": principals, "note": "ü" * 5000}, image_name="Überbild-基础")

    # When made an ASFF finding
    document = asff(finding, now=NOW)

    # Then it fits Security Hub's limits and says how much evidence it left out
    assert len(json.dumps(document, ensure_ascii=False).encode()) <= FINDING_LIMIT
    assert int(document["ProductFields"][OMITTED]) > 39_000
    assert all(len(value) <= 2048 for value in document["ProductFields"].values())
    assert len(document["ProductFields"]) <= 50 and len(document["Description"]) <= 1024
    assert document["Resources"][0]["Details"]["Other"]["Name"] == "Überbild-基础"


def test_alert_is_sent_and_the_failure_counted_when_security_hub_throttles(
    ledger: DynamoLedger, hub_client: tuple[Any, Stubber]
) -> None:
    client, stubber = hub_client
    # Given Security Hub throttling every call (botocore's retries already spent)
    stubber.add_client_error("batch_import_findings", "ThrottlingException", "Rate exceeded", 429)
    sns = RecordingSns()
    alerts = LedgeredAlerts(ledger, sns, clock=lambda: NOW, hub=_export(client))

    # When a finding is published
    result = alerts.publish(a_finding())

    # Then the alert went out and is recorded as sent: Security Hub's failure raised nothing
    assert result is AlertResult.SENT and len(sns.published) == 1
    [entry] = ledger.findings_for_image("us-east-1", "ami-0123456789abcdef0")
    assert entry.state is AlertState.SENT


def test_alert_is_sent_when_security_hub_is_not_enabled_in_the_region(
    ledger: DynamoLedger, hub_client: tuple[Any, Stubber]
) -> None:
    client, stubber = hub_client
    stubber.add_client_error(
        "batch_import_findings",
        "InvalidAccessException",
        "Account 123456789012 is not subscribed to AWS Security Hub",
        401,
    )
    sns = RecordingSns()

    result = LedgeredAlerts(ledger, sns, clock=lambda: NOW, hub=_export(client)).publish(a_finding())

    assert result is AlertResult.SENT and len(sns.published) == 1


class OrderedHub:
    """A Security Hub that notes how many alerts had gone out when it was called."""

    def __init__(self, sns: RecordingSns) -> None:
        self.sns = sns
        self.calls: list[int] = []

    def export(self, finding: Any, *, excepted: Any = None) -> HubOutcome:
        self.calls.append(len(self.sns.published))
        return HubOutcome.IMPORTED


def test_security_hub_is_called_after_the_alert_and_not_at_all_when_sns_fails(ledger: DynamoLedger) -> None:
    sns = RecordingSns()
    hub = OrderedHub(sns)
    LedgeredAlerts(ledger, sns, clock=lambda: NOW, hub=hub).publish(a_finding())
    failing = RecordingSns(fail=True)
    not_called = OrderedHub(failing)

    with pytest.raises(ConnectionError):
        LedgeredAlerts(ledger, failing, clock=lambda: NOW, hub=not_called).publish(
            a_finding(event_id="e2", region="eu-west-1")
        )

    assert hub.calls == [1] and not_called.calls == []


def test_security_hub_client_retries_a_few_times_when_made_by_the_factory() -> None:
    client = ClientFactory().securityhub("us-east-1")

    assert client.meta.config.retries["total_max_attempts"] == 4  # botocore counts the first attempt here
    assert client.meta.config.read_timeout == 5
