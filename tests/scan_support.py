"""What the scan tests share: an in-process moto account with amiguard's moto gaps filled, and one scan call."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from amiguard.aws.clients import ClientFactory
from amiguard.aws.images import Ec2Images
from amiguard.aws.replication import Ec2Replication
from amiguard.aws.tags import Ec2Tagging
from amiguard.aws.violations import DynamoViolations
from amiguard.models.settings import load_settings
from amiguard.services.scan import Scanner, ScanReport
from amiguard_cli.sandbox.moto_gaps import patch_moto
from amiguard_cli.sandbox.replication_gaps import CopyImageFidelity

HOME = "us-east-1"
ACCOUNT = "123456789012"
LEDGER = "amiguard-ledger"


def create_ledger(session: boto3.Session) -> DynamoViolations:
    """The ledger table (its keys as the template declares them) and amiguard's violation records in it."""
    session.client("dynamodb", region_name=HOME).create_table(
        TableName=LEDGER,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoViolations(lambda: session.client("dynamodb", region_name=HOME), LEDGER)


def moto_session(monkeypatch: pytest.MonkeyPatch, settings: Mapping[str, str]) -> Iterator[boto3.Session]:
    """A boto3 session on a fresh moto account in ``HOME``, with these ``AMIGUARD_*`` settings (a fixture body)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": HOME,
        "MOTO_ACCOUNT_ID": ACCOUNT,
        **settings,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        patch_moto()
        session = boto3.Session(region_name=HOME)
        # CopyImage's ClientToken, tags and encryption, and EnableImageDeprecation, as EC2 applies them
        CopyImageFidelity(ACCOUNT).register(session.events)
        yield session


def run_scan(
    session: boto3.Session,
    regions: Sequence[str],
    *,
    fix: bool = False,
    config: Config | None = None,
    replication: bool = False,
    tagging: bool = False,
    ledger: bool = False,
) -> ScanReport:
    """One scan with the settings from the environment, the adapters asked for, four workers per region."""
    clients = ClientFactory(session, config=config) if config else ClientFactory(session)
    return Scanner(
        settings=load_settings(),
        images=lambda region: Ec2Images(clients.ec2(region)),
        replication=(lambda region: Ec2Replication(clients.ec2(region))) if replication else None,
        tagging=(lambda region: Ec2Tagging(clients.ec2(region))) if tagging else None,
        violations=DynamoViolations(lambda: clients.dynamodb(HOME), LEDGER) if ledger else None,
        account=ACCOUNT,
        fix=fix,
        concurrency=4,
    ).scan(tuple(regions))
