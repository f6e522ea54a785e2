"""tamper_guard: alert when amiguard's own rules, functions, roles or trail are changed (see
amiguard.services.tamper_guard)."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from amiguard.aws.clients import ClientFactory
from amiguard.models.settings import load_settings
from amiguard.observability import handle_event, logger, metrics
from amiguard.services.alerting import alert_path
from amiguard.services.tamper_guard import TamperGuard


@cache
def build_service() -> TamperGuard:
    """Composition root: settings, clients and adapters, made once per execution environment."""
    settings = load_settings().require("alert_topic_arn", "own_functions", "own_rules", "own_roles")
    return TamperGuard(settings=settings, alerts=alert_path(settings, ClientFactory()))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(build_service(), event, context, function="tamper_guard")
