"""public_guard: revoke public and untrusted AMI and snapshot sharing (see amiguard.services.public_guard)."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from amiguard.aws.accounts import AccountClients
from amiguard.aws.clients import ClientFactory
from amiguard.aws.exposures import LedgerExposures
from amiguard.aws.images import Ec2Images
from amiguard.aws.ledger import DynamoLedger
from amiguard.models.settings import load_settings
from amiguard.observability import handle_event, invocation_deadline, logger, metrics
from amiguard.services.alerting import alert_path
from amiguard.services.public_guard import PublicGuard


@cache
def build_service() -> PublicGuard:
    """Composition root: settings, clients and adapters, made once per execution environment."""
    settings = load_settings().require("alert_topic_arn", "own_role_arns")
    clients = ClientFactory(deadline=invocation_deadline)  # retries end before Lambda would kill the attempt
    # Organization mode: EC2 in the event's account, through its member role (the function's own role otherwise).
    accounts = AccountClients.for_function(clients, settings, "public_guard")
    return PublicGuard(
        settings=settings,
        images=lambda region: Ec2Images(accounts.ec2(region)),
        alerts=alert_path(settings, clients, accounts=accounts),  # ledger + dedup, then SNS
        # what amiguard already reported, read only when an event's exposure is no longer there
        exposures=LedgerExposures(lambda: DynamoLedger(clients.dynamodb(), settings.ledger_table))
        if settings.ledger_table
        else None,
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(build_service(), event, context, function="public_guard")
