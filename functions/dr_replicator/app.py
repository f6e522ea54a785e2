"""dr_replicator: copy approved AMIs to DR regions and track the copies (see amiguard.services.dr_replicator)."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from amiguard.aws.accounts import AccountClients
from amiguard.aws.clients import ClientFactory
from amiguard.aws.replicas import DynamoReplicaLedger
from amiguard.aws.replication import Ec2Replication
from amiguard.models.settings import load_settings
from amiguard.observability import handle_event, invocation_deadline, logger, metrics
from amiguard.services.alerting import alert_path
from amiguard.services.dr_replicator import DrReplicator


@cache
def build_service() -> DrReplicator:
    """Composition root: settings, clients and adapters, made once per execution environment."""
    settings = load_settings().require("alert_topic_arn", "ledger_table", "own_role_arns")
    clients = ClientFactory(deadline=invocation_deadline)  # retries end before Lambda would kill the attempt
    # Organization mode: EC2 in the event's account, through its member role (the function's own role otherwise).
    accounts = AccountClients.for_function(clients, settings, "dr_replicator")
    return DrReplicator(
        settings=settings,
        replication=lambda region: Ec2Replication(accounts.ec2(region)),
        ledger=DynamoReplicaLedger(clients.dynamodb(), settings.ledger_table),
        alerts=alert_path(settings, clients, accounts=accounts),  # ledger + de-duplication, then SNS
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(build_service(), event, context, function="dr_replicator")
