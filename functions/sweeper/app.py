"""sweeper: re-check every owned AMI on a schedule (see amiguard.services.sweeper)."""

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from amiguard.aws.accounts import AccountClients, AccountNames
from amiguard.aws.alerts import SnsAlerts, topic_region
from amiguard.aws.clients import ClientFactory
from amiguard.aws.deployment import AwsDeployment
from amiguard.aws.images import Ec2Images
from amiguard.aws.regions import enabled_regions
from amiguard.aws.replicas import DynamoReplicaLedger
from amiguard.aws.replication import Ec2Replication
from amiguard.aws.tags import Ec2Tagging
from amiguard.aws.violations import DynamoViolations
from amiguard.models.settings import load_settings
from amiguard.observability import handle_event, invocation_deadline, logger, metrics
from amiguard.services.alerting import alert_path
from amiguard.services.dr_replicator import LedgerRecordedReplication
from amiguard.services.sweeper import Sweeper, sweep_regions


@cache
def build_service() -> Sweeper:
    """Composition root: settings, clients and adapters, made once per execution environment."""
    settings = load_settings().require("alert_topic_arn", "ledger_table")
    clients = ClientFactory(deadline=invocation_deadline)  # retries end before Lambda would kill the attempt
    # Organization mode: EC2 in the event's account, through its member role (the function's own role otherwise).
    accounts = AccountClients(
        clients, function="sweeper", organization=settings.organization, own_role_arns=settings.own_role_arns
    )
    names = AccountNames(lambda: clients.client("organizations")) if settings.organization else None
    home = boto3.Session().region_name or "us-east-1"
    replicas = DynamoReplicaLedger(clients.dynamodb(), settings.ledger_table)  # which copies amiguard made
    return Sweeper(
        settings=settings,
        images=lambda region: Ec2Images(accounts.ec2(region)),
        replication=lambda region: LedgerRecordedReplication(Ec2Replication(accounts.ec2(region)), replicas),
        replica_records=replicas,
        tagging=lambda region: Ec2Tagging(accounts.ec2(region)),
        violations=DynamoViolations(clients.dynamodb, settings.ledger_table) if settings.ledger_table else None,
        # ledger + de-duplication: a standing finding is re-alerted at most every RealertHours
        alerts=alert_path(settings, clients, standing=True, names=names),
        # the summary is news every time: never de-duplicated
        summary=SnsAlerts(clients.sns(topic_region(settings.alert_topic_arn)), settings.alert_topic_arn),
        regions=lambda: sweep_regions(home, enabled_regions(accounts.ec2(home)), settings),
        # amiguard's own rules, functions and trail in the stack's region, read back (EventBridge, Lambda, CloudTrail)
        deployment=AwsDeployment(
            events=clients.client("events", home),
            lambda_=clients.client("lambda", home),
            cloudtrail=clients.client("cloudtrail", home),
        ),
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(build_service(), event, context, function="sweeper")
