"""sweeper: re-check every owned AMI on a schedule (see amiguard.services.sweeper)."""

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from amiguard.aws.alerts import SnsAlerts
from amiguard.aws.clients import ClientFactory
from amiguard.aws.images import Ec2Images
from amiguard.models.settings import load_settings
from amiguard.observability import handle_event, logger, metrics
from amiguard.services.sweeper import Sweeper, sweep_regions


@cache
def build_service() -> Sweeper:
    """Composition root: settings, clients and adapters, made once per execution environment."""
    settings = load_settings()
    clients = ClientFactory()
    alerts = SnsAlerts(clients.sns(), settings.alert_topic_arn)
    home = boto3.Session().region_name or "us-east-1"
    return Sweeper(
        settings=settings,
        images=lambda region: Ec2Images(clients.ec2(region)),
        alerts=alerts,  # the de-duplicating alert path wraps this (issue 5)
        summary=alerts,  # the summary is news every time: never de-duplicated
        regions=sweep_regions(home, settings),
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(build_service(), event, function="sweeper")
