"""``amiguard scan --org --sandbox``: the organization scan on an embedded organization (moto) of three accounts.

The sandbox's organization (:mod:`amiguard_cli.sandbox.organization`): the security account and two members,
each with the member roles (``amiguard-reader``, and the acting roles ``--fix`` uses), each seeded with planted
problems in two regions. ``MOTO_ACCOUNT_ID`` is not set: moto answers AssumeRole with credentials of the role's
account, so each account's AMIs are its own. With ``--fix`` the organization is scanned again afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import boto3
from moto import mock_aws

from amiguard.aws.clients import ClientFactory
from amiguard_cli.sandbox.cloudtrail import ACCOUNT
from amiguard_cli.sandbox.estate import TRUSTED_ACCOUNT, plant_estate
from amiguard_cli.sandbox.moto_gaps import patch_moto
from amiguard_cli.sandbox.organization import ACTING_FUNCTIONS, ROLE_PATH, SandboxOrganization, member_role_name
from amiguard_cli.sandbox.scan import HOME, OTHER, _environment

SETTINGS = {"AMIGUARD_TRUSTED_PRINCIPALS": TRUSTED_ACCOUNT, "AMIGUARD_REQUIRED_TAGS": "Owner,CostCenter"}


def run_org_in_sandbox(args: argparse.Namespace) -> int:
    """Seed the embedded organization, scan it as ``args`` say (and again after ``--fix``); the exit code."""
    from amiguard_cli.scan import summary_line, write_report
    from amiguard_cli.scan_org import scan_organization

    environment = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox", "AWS_DEFAULT_REGION": HOME}
    if not args.regions and not args.all_regions:
        args.regions = f"{HOME},{OTHER}"
    saved_account = os.environ.pop("MOTO_ACCOUNT_ID", None)  # it would override the members' credentials
    try:
        with _environment(environment | SETTINGS), mock_aws():
            os.environ.pop("AWS_PROFILE", None)
            os.environ.pop("AWS_ENDPOINT_URL", None)
            patch_moto()
            session = boto3.Session(region_name=HOME)
            org = SandboxOrganization(session, ACCOUNT, Path.cwd())
            org.create()
            central_roles = {
                function: f"arn:aws:iam::{ACCOUNT}:role{ROLE_PATH}{member_role_name(function)}"
                for function in ACTING_FUNCTIONS
            }
            org.deploy_member_roles(central_roles)
            for account in org.accounts:
                plant_estate(
                    ClientFactory(org.plumbing(account.id)).ec2,
                    regions=(HOME, OTHER),
                    per_region=6,
                    public=0.2,
                    untrusted=0.2,
                    trusted=0.2,
                    missing_tag=0.2,
                    workers=2,
                )
            names = ", ".join(f"{account.name} {account.id}" for account in org.accounts)
            print(f"amiguard scan --org --sandbox: embedded organization {org.id}: {names}", file=sys.stderr)
            report = scan_organization(args, session)
            if report is None:
                return 2
            write_report(report, args)
            if args.fix:
                args.fix = False
                after = scan_organization(args, session)
                if after is not None:
                    left = sorted({finding.type.value for finding in after.findings})
                    note = f"; left for a human: {', '.join(left)}" if left else "; nothing left"
                    print(f"after --fix, scanned again: {summary_line(after)}{note}", file=sys.stderr)
            return report.exit_code
    finally:
        if saved_account is not None:
            os.environ["MOTO_ACCOUNT_ID"] = saved_account
