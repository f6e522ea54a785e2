"""notifier: deliver alerts from the SNS topic to Slack (see amiguard.services.notifier)."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from amiguard.aws.clients import ClientFactory
from amiguard.aws.posted import PostedAlerts
from amiguard.models.settings import load_settings
from amiguard.observability import handle_event, invocation_deadline, logger, metrics
from amiguard.services.notifier import Notifier
from amiguard.slack.webhook import SlackError, SlackWebhook, SlackWebhookSecret, secret_region


@cache
def build_service() -> Notifier:
    """Composition root: the secret provider keeps its cache for the life of the execution environment."""
    settings = load_settings()
    if not settings.slack_webhook_secret:
        return Notifier(slack=None)
    clients = ClientFactory(deadline=invocation_deadline)  # retries end before Lambda would kill the attempt
    secrets = SecretsProvider(boto3_client=clients.secretsmanager(secret_region(settings.slack_webhook_secret)))
    secret = SlackWebhookSecret(secrets, settings.slack_webhook_secret)
    # What was posted is kept in the ledger: a second copy of an alert is not posted again.
    posted = (
        PostedAlerts(clients.dynamodb(), settings.ledger_table, deadline=invocation_deadline)
        if settings.ledger_table
        else None
    )
    return Notifier(slack=SlackWebhook(secret.url), posted=posted)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return handle_event(build_service(), event, context, function="notifier")
    except SlackError as error:
        # The message is not lost: Lambda retries it, then the dead-letter queue keeps it.
        logger.error("alert not delivered to Slack; raising so Lambda retries", extra={"error": str(error)})
        raise
