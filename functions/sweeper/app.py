"""sweeper: re-check every owned AMI on a schedule (see amiguard.services.sweeper); in organization mode the
schedule fans out one SQS message per account and each message sweeps one account (amiguard.services.sweep_fanout).
"""

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from amiguard.aws.accounts import AccountClients
from amiguard.aws.alerts import SnsAlerts, topic_region
from amiguard.aws.clients import ClientFactory
from amiguard.aws.deployment import AwsDeployment
from amiguard.aws.fanout import ForwardingRules, OrganizationAccounts, SqsSweepQueue
from amiguard.aws.images import Ec2Images
from amiguard.aws.regions import enabled_regions
from amiguard.aws.replicas import DynamoReplicaLedger
from amiguard.aws.replication import Ec2Replication
from amiguard.aws.tags import Ec2Tagging
from amiguard.aws.violations import DynamoViolations
from amiguard.models.settings import Settings, load_settings
from amiguard.observability import handle_event, invocation_deadline, logger, metrics, report
from amiguard.policy.screening import Drop
from amiguard.services.alerting import alert_path
from amiguard.services.dr_replicator import LedgerRecordedReplication
from amiguard.services.outcome import Outcome
from amiguard.services.sweep_fanout import AccountSweep, SweepDispatcher
from amiguard.services.sweeper import Sweeper, SweepIncomplete, sweep_regions


@cache
def settings() -> Settings:
    return load_settings().require("alert_topic_arn", "ledger_table", "own_role_arns")


@cache
def central_clients() -> ClientFactory:
    return ClientFactory(deadline=invocation_deadline)  # retries end before Lambda would kill the attempt


def home() -> str:
    return boto3.Session().region_name or "us-east-1"


def sweeper_for(clients: ClientFactory, account: str | None = None, regions: tuple[str, ...] = ()) -> Sweeper:
    """A sweep of this account (``clients``: its own) or, in organization mode, of ``account`` through ``clients``
    made from its member role; the ledger, alerts and amiguard's own deployment are always the central stack's."""
    config, central, region = settings(), central_clients(), home()
    replicas = DynamoReplicaLedger(central.dynamodb(), config.ledger_table)  # which copies amiguard made
    own_account = config.alert_topic_arn.split(":")[4]
    verify_own = account is None or account == own_account  # the stack's rules, functions and trail live here
    return Sweeper(
        settings=config,
        images=lambda r: Ec2Images(clients.ec2(r)),
        replication=lambda r: LedgerRecordedReplication(Ec2Replication(clients.ec2(r)), replicas),
        replica_records=replicas,
        tagging=lambda r: Ec2Tagging(clients.ec2(r)),
        violations=DynamoViolations(central.dynamodb, config.ledger_table),
        # ledger + de-duplication: a standing finding is re-alerted at most every RealertHours
        alerts=alert_path(config, central, standing=True, accounts=accounts()),
        # the summary is news every time: never de-duplicated
        summary=SnsAlerts(central.sns(topic_region(config.alert_topic_arn)), config.alert_topic_arn),
        regions=(
            (lambda: list(regions))
            if regions
            else lambda: sweep_regions(region, enabled_regions(clients.ec2(region)), config)
        ),
        # amiguard's own rules, functions and trail in the stack's region, read back (EventBridge, Lambda, CloudTrail)
        deployment=AwsDeployment(
            events=central.client("events", region),
            lambda_=central.client("lambda", region),
            cloudtrail=central.client("cloudtrail", region),
        )
        if verify_own
        else None,
        # organization mode: each region with AMIs forwards its events to the central bus
        forwarding=ForwardingRules(lambda r: clients.client("events", r)) if account else None,
        forwarding_exempt=frozenset({region}) if account == own_account else frozenset(),
    )


@cache
def build_service() -> Sweeper:
    """Composition root of the one-account sweep: settings, clients and adapters, made once per environment."""
    return sweeper_for(central_clients())


@cache
def build_dispatcher() -> SweepDispatcher:
    central = central_clients()
    return SweepDispatcher(organization=OrganizationAccounts(central), queue=sweep_queue())


@cache
def sweep_queue() -> SqsSweepQueue:
    return SqsSweepQueue(central_clients().client("sqs"), settings().sweep_queue_url)


@cache
def accounts() -> AccountClients:
    """Each account's clients through its amiguard-sweeper role, kept while the environment is warm (botocore
    renews the role's credentials before they expire: one AssumeRole per account per hour of use)."""
    return AccountClients.for_function(central_clients(), settings(), "sweeper")


def sweep_account(record: Any, context: LambdaContext) -> None:
    """One SQS message: one account swept (a failure raises: the record is reported failed and redelivered)."""
    try:
        sweep = AccountSweep.parse(record.body)
    except ValueError as bad:
        drop = Drop("malformed-event", f"sweep message {record.message_id}: {bad}")
        report(Outcome.dropped(drop), function="sweeper")
        return
    sweeper = sweeper_for(accounts().for_account(sweep.account), sweep.account, sweep.regions)
    try:
        handle_event(sweeper, sweep.schedule_event(), context, function="sweeper")
    except SweepIncomplete:
        following = sweep.continued(sweeper.unfinished)  # only what the deadline left, and only while progressing
        if following is None:
            raise
        sweep_queue().send(following.body())
        logger.info("sweep continued", account=sweep.account, regions=list(following.regions))


def _is_sweep_batch(event: object) -> bool:
    """An SQS batch as the SweepQueue's mapping delivers it: records, each from SQS. Anything else (a direct
    invoke with ``{"Records": []}`` included) goes the schedule's way, where a malformed event is dropped."""
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(record, dict) and record.get("eventSource") == "aws:sqs" for record in records)
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if _is_sweep_batch(event):  # the SweepQueue (organization mode)
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        return process_partial_response(
            event=event,
            record_handler=lambda record: sweep_account(record, context),
            processor=BatchProcessor(event_type=EventType.SQS),
            context=context,
        )
    if settings().organization:
        return handle_event(build_dispatcher(), event, context, function="sweeper")
    return handle_event(build_service(), event, context, function="sweeper")
