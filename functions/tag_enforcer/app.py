"""tag_enforcer: auto-tag new AMIs, enforce required tags, escalate overdue ones (amiguard.services.tag_enforcer)."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from amiguard.aws.accounts import AccountClients
from amiguard.aws.clients import ClientFactory
from amiguard.aws.regions import enabled_regions
from amiguard.aws.tags import Ec2Tagging
from amiguard.aws.violations import DynamoViolations
from amiguard.models.settings import load_settings
from amiguard.observability import handle_event, invocation_deadline, logger, metrics
from amiguard.services.alerting import alert_path
from amiguard.services.tag_enforcer import TagEnforcer


@cache
def build_service() -> TagEnforcer:
    """Composition root: settings, clients and adapters, made once per execution environment."""
    settings = load_settings().require("alert_topic_arn", "own_role_arns", "ledger_table")
    clients = ClientFactory(deadline=invocation_deadline)  # retries end before Lambda would kill the attempt
    # Organization mode: EC2 in the event's account, through its member role (the function's own role otherwise).
    accounts = AccountClients.for_function(clients, settings, "tag_enforcer")
    return TagEnforcer(
        settings=settings,
        tagging=lambda region: Ec2Tagging(accounts.ec2(region)),
        violations=DynamoViolations(clients.dynamodb, settings.ledger_table),  # when each violation started
        alerts=alert_path(settings, clients, accounts=accounts),  # ledger + dedup, then SNS
        # the hourly escalation sweep: its own region first, then every other region the account has enabled
        regions=lambda home: list(dict.fromkeys([home, *enabled_regions(accounts.ec2(home))])),
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(build_service(), event, context, function="tag_enforcer")
