"""``amiguard scan --sandbox``: the scan on an embedded account (moto) seeded with one of every planted problem.

For a new user with no AWS account: the same command, the same checks and remedies, against an account with
known problems (public and untrusted shares, a public snapshot, image and snapshot block public access off, AMIs
lacking a required tag, an approved AMI never copied to the DR region, a replica whose source is gone, an
unencrypted, a paravirtual, a stale and an unused AMI). With ``--fix``
the remedies are applied and the account scanned again, so what ``--fix`` cleared (and what only a human can:
a missing Owner) is shown. The account lives for one command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import boto3
from moto import mock_aws

from amiguard.aws.clients import ClientFactory
from amiguard.aws.replicas import DynamoReplicaLedger
from amiguard.services.scan import ScanReport
from amiguard_cli.sandbox.cloudtrail import ACCOUNT
from amiguard_cli.sandbox.estate import (
    TRUSTED_ACCOUNT,
    Estate,
    plant_estate,
    plant_hygiene,
    plant_replication_drift,
)
from amiguard_cli.sandbox.moto_gaps import patch_moto
from amiguard_cli.sandbox.replication_gaps import CopyImageFidelity

HOME, OTHER, DR = "us-east-1", "eu-west-1", "us-west-2"
LEDGER_TABLE = "amiguard-ledger"
SETTINGS = {
    "AMIGUARD_LEDGER_TABLE": LEDGER_TABLE,  # --fix records each violation it marks, as tag_enforcer does
    "AMIGUARD_TRUSTED_PRINCIPALS": TRUSTED_ACCOUNT,
    "AMIGUARD_REQUIRED_TAGS": "Owner,CostCenter",
    "AMIGUARD_DR_REGIONS": DR,
    "AMIGUARD_REPLICA_CLEANUP": "deprecate",
    "AMIGUARD_MAX_IMAGE_AGE_DAYS": "365",
    "AMIGUARD_UNUSED_IMAGE_DAYS": "90",
    "AMIGUARD_STALE_IMAGE_ACTION": "deprecate",
}

ScanAccount = Callable[[argparse.Namespace, boto3.Session], ScanReport | None]


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def plant(session: boto3.Session) -> Estate:
    """One of every problem the scan knows, across two regions and a DR region."""
    ec2 = ClientFactory(session).ec2
    estate = plant_estate(
        ec2,
        regions=(HOME, OTHER),
        per_region=10,
        public=0.1,
        untrusted=0.1,
        trusted=0.1,
        missing_tag=0.2,
        public_snapshots=1,
        block_public_access_off=[OTHER],
        workers=4,
    )
    replicas = DynamoReplicaLedger(session.client("dynamodb"), LEDGER_TABLE)
    estate = plant_replication_drift(ec2, estate, home=HOME, dr_region=DR, record_replica=replicas.claim)
    return plant_hygiene(
        ec2,
        estate,
        region=HOME,
        account=ACCOUNT,
        stale_days=365,
        unused_days=90,
        snapshot_block_public_access_off=[OTHER],
    )


def run_in_sandbox(args: argparse.Namespace, scan_account: ScanAccount) -> int:
    """Seed the embedded account, scan it as ``args`` say (and again after ``--fix``); return the exit code."""
    from amiguard_cli.scan import write_report  # the CLI module imports this one lazily

    environment = {
        "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
        "AWS_DEFAULT_REGION": HOME,
        "MOTO_ACCOUNT_ID": ACCOUNT,
    } | SETTINGS
    if not args.regions and not args.all_regions:
        args.regions = ",".join((HOME, OTHER, DR))
    with _environment(environment), mock_aws():
        os.environ.pop("AWS_PROFILE", None)
        os.environ.pop("AWS_ENDPOINT_URL", None)
        patch_moto()
        session = boto3.Session(region_name=HOME)
        CopyImageFidelity(ACCOUNT).register(session.events)  # CopyImage tags and deprecation, as EC2 does them
        session.client("dynamodb").create_table(
            TableName=LEDGER_TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        estate = plant(session)
        print(
            f"amiguard scan --sandbox: embedded account {ACCOUNT} seeded with {len(estate.images)} AMIs in "
            f"{HOME}, {OTHER} and {DR}; settings: " + ", ".join(f"{key}={value}" for key, value in SETTINGS.items()),
            file=sys.stderr,
        )
        report = scan_account(args, session)
        if report is None:
            return 2
        write_report(report, args)
        if args.fix:
            args.fix = False
            after = scan_account(args, session)
            if after is not None:
                from amiguard_cli.scan import summary_line

                left = sorted({finding.type.value for finding in after.findings})
                note = f"; left for a human: {', '.join(left)}" if left else "; nothing left"
                print(f"after --fix, scanned again: {summary_line(after)}{note}", file=sys.stderr)
        return report.exit_code
