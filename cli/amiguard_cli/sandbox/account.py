"""The sandbox account: moto, the template's rules, and a dispatcher that runs the real handlers."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import botocore.session
from moto import mock_aws

from amiguard_cli.sandbox import securityhub_gaps
from amiguard_cli.sandbox.cfn import (
    LAYER_MOUNT,
    Route,
    Stack,
    Subscription,
    deployed_data_path,
    deployed_environment,
    evaluate_conditions,
    event_routes,
    function_role,
    function_timeout,
    load_template,
    parameter_values,
    role_arns,
    scheduled_functions,
    sns_subscriptions,
    table_definition,
)
from amiguard_cli.sandbox.clock import InvocationKilled, RealClock, SandboxClock
from amiguard_cli.sandbox.cloudtrail import (
    ACCOUNT,
    DEFAULT_USER,
    CloudTrailRecorder,
    acting_as,
    assumed_role,
    current_identity,
    iam_user,
    to_json,
)
from amiguard_cli.sandbox.deployment import (
    DEFAULT_BUS,
    Deployed,
    deploy_event_buses,
    deploy_functions,
    deploy_roles,
    deploy_schedules,
    deploy_trail,
    rule_bus,
    rule_name,
)
from amiguard_cli.sandbox.faults import FaultInjector
from amiguard_cli.sandbox.iam import Authorization, Caller, authorizations, iam_actions
from amiguard_cli.sandbox.moto_gaps import CannedHttp, canned, patch_moto
from amiguard_cli.sandbox.organization import (
    ACTING_FUNCTIONS,
    ROLE_PATH,
    MemberRoles,
    MemberSession,
    SandboxOrganization,
    account_of_access_key,
)
from amiguard_cli.sandbox.queues import PolledQueue, drain, record_failed
from amiguard_cli.sandbox.regions import RegionForwarding
from amiguard_cli.sandbox.replication_gaps import CopyImageFidelity
from amiguard_cli.sandbox.roles import RolePermissions, role_of, role_permissions

LEDGER_TABLE_ID = "LedgerTable"  # logical ids in template.yaml the sandbox stands in for
ALERT_TOPIC_ID = "AlertTopic"
DEDUP_KEY_ID = "AlertDedupKey"
SWEEP_QUEUE_ID = "SweepQueue"  # organization mode's queue of account sweeps
SWEEP_MAPPING = "SweepQueueMapping"  # its event source mapping, to the sweeper
SWEEPER = "sweeper"
# What only a function's environment holds, never the sandbox process: amiguard's settings, its botocore data.
FUNCTION_ONLY_PREFIXES = ("AMIGUARD_", "AWS_DATA_PATH")
LAMBDA_LAYER_PREFIX = LAYER_MOUNT + "/"
SHELL_ONLY_PREFIXES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL")
MAX_ROUNDS = 25  # a chain of events longer than this is a loop amiguard must not have
LAMBDA_ATTEMPTS = 3  # asynchronous invocation: the first try and two retries, then the failure destination
# How each service refuses a call its caller's policies do not allow: (error code, HTTP status).
ACCESS_DENIED = {
    "ec2": ("UnauthorizedOperation", 403),
    "sns": ("AuthorizationError", 403),
    "sts": ("AccessDenied", 403),
    "sqs": ("AccessDenied", 403),
}
ACCESS_DENIED_DEFAULT = ("AccessDeniedException", 400)  # DynamoDB, Secrets Manager, KMS and most JSON APIs
LAMBDA_RETRY_DELAYS = (60.0, 120.0)  # seconds Lambda waits before the first and the second retry
# Organization mode: the regions each member forwards from (one the central stack never runs in among them).
ORG_MEMBER_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


class SandboxLoop(RuntimeError):
    """amiguard kept triggering itself: the dispatcher gave up."""


@dataclass
class FakeContext:
    """The parts of the Lambda context the handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    deadline: float = float("inf")  # epoch seconds, on ``clock``: the function's Timeout from the attempt's start
    clock: SandboxClock = field(default_factory=RealClock)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock.time()) * 1000))


@dataclass
class Delivery:
    """One event delivered to one function by one rule, and what the function made of it."""

    function: str
    rule: str
    region: str
    event: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    output: str = ""  # what the handler printed: structured logs and EMF metrics
    calls: list[str] = field(default_factory=list)  # IAM actions of the AWS calls the handler made
    denied: list[str] = field(default_factory=list)  # "action on resource" its role refused (AccessDenied)
    failures: list[str] = field(default_factory=list)  # the error of each failed attempt (Lambda retries)
    attempts: int = 0  # Lambda attempts made (1 to LAMBDA_ATTEMPTS)
    polled: str = ""  # the SQS message body, when an event source mapping delivered it (the SweepQueue's)
    timeouts: int = 0  # attempts Lambda stopped at their deadline ("Task timed out")


@dataclass
class Alert:
    subject: str
    message: dict[str, Any]
    attributes: dict[str, str]


# What differs between two runs of one scenario: times and request ids; resource ids too, where resources were
# made from several threads (moto's ids are seeded, so they are the same when made in the same order).
_RUN_SPECIFIC = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?"
    r"|\b\d+\.\d+\b"  # measured durations (exposure, latency)
)
_RESOURCE_ID = re.compile(r"\b(?:ami|snap|i|r|vol)-[0-9a-f]{8,17}\b")


def _order_key(event: dict[str, Any]) -> tuple[str, str]:
    text = _RUN_SPECIFIC.sub("#", json.dumps(event, sort_keys=True, default=str))
    return _RESOURCE_ID.sub("#", text), text


def canonical_order(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events of one queue ordered by what they say, not by when they arrived.

    EventBridge promises no order, and calls a function makes from several threads (the sweeper's) land in
    whatever order the threads ran: sorted by their content, ids and times masked, a scenario delivers the
    same events in the same order run after run: what they say first, then the resources they name.
    """
    return sorted(events, key=_order_key)


def repo_root(start: Path | None = None) -> Path:
    """The folder holding template.yaml: the current directory or one of its parents."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "template.yaml").is_file() and (folder / "functions").is_dir():
            return folder
    raise FileNotFoundError("template.yaml not found here or above; run from the amiguard checkout")


def load_function(root: Path, name: str) -> ModuleType:
    """Import ``functions/<name>/app.py`` as its own module (Lambda imports it as ``app``)."""
    module_name = f"amiguard_function_{name}"
    spec = importlib.util.spec_from_file_location(module_name, root / "functions" / name / "app.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"functions/{name}/app.py not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _logs_to(stream: io.StringIO) -> Iterator[None]:
    """Send the functions' structured logs (Powertools binds stdout at import) to ``stream`` for a while."""
    handlers = [h for h in logging.getLogger("amiguard").handlers if isinstance(h, logging.StreamHandler)]
    previous = [handler.setStream(stream) for handler in handlers]
    try:
        yield
    finally:
        for handler, old in zip(handlers, previous, strict=True):
            if old is not None:
                handler.setStream(old)


def sns_lambda_event(envelope: Mapping[str, Any], subscription_arn: str) -> dict[str, Any]:
    """What Lambda receives from SNS, built from the JSON envelope SNS delivers to an SQS subscriber.

    Same fields; Lambda spells two of them ``SigningCertUrl`` / ``UnsubscribeUrl`` and always carries
    ``Subject`` (null when none) and ``MessageAttributes``.
    """
    sns = {
        "Type": envelope.get("Type", "Notification"),
        "MessageId": envelope.get("MessageId"),
        "TopicArn": envelope.get("TopicArn"),
        "Subject": envelope.get("Subject"),
        "Message": envelope.get("Message"),
        "Timestamp": envelope.get("Timestamp"),
        "SignatureVersion": envelope.get("SignatureVersion", "1"),
        "Signature": envelope.get("Signature", ""),
        "SigningCertUrl": envelope.get("SigningCertURL", ""),
        "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
        "MessageAttributes": dict(envelope.get("MessageAttributes") or {}),
    }
    return {
        "Records": [
            {"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": subscription_arn, "Sns": sns}
        ]
    }


def lambda_botocore_session(data_path: str | None) -> botocore.session.Session:
    """A botocore session as a deployed function's: its loader reads ``data_path`` (AWS_DATA_PATH) first."""
    session = botocore.session.get_session()
    if data_path:
        session.set_config_variable("data_path", data_path)
    return session


def function_identity(role_arn: str, function: str) -> dict[str, Any]:
    """How CloudTrail records a call made by an amiguard function: a session of its role (``role_arn``)."""
    account, resource = role_arn.split(":")[4], role_arn.split(":", 5)[5]
    path, name = resource.removeprefix("role").rsplit("/", 1)
    return assumed_role(name, function, path=path + "/", account=account)


class Sandbox:
    """An in-process AWS account with amiguard deployed in ``stack_regions`` (the first is home).

    ``organization=True``: organization mode (:mod:`amiguard_cli.sandbox.organization`): the account is the
    security account of an organization with two members (``sb.org``), the stack is deployed with its
    ``OrganizationId``, every account has the member roles, and each member forwards its AMI events from
    ``member_regions`` to the central bus. ``parameters={"OrganizationId": ...}`` means the same (the
    organization's id is then moto's).
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        stack_regions: tuple[str, ...] = ("us-east-1",),
        forward_regions: tuple[str, ...] = (),
        parameters: Mapping[str, str] | None = None,
        account: str = ACCOUNT,
        clock: SandboxClock | None = None,
        organization: bool = False,
        member_regions: tuple[str, ...] = ORG_MEMBER_REGIONS,
    ) -> None:
        self.root = repo_root(root)
        # Lambda's time: each attempt's deadline, the waits before retries (see amiguard_cli.sandbox.clock).
        self.clock: SandboxClock = clock or RealClock()
        self.stack_regions = stack_regions
        self.home = stack_regions[0]
        self.account = account
        template = load_template(self.root / "template.yaml")
        self.template = template
        # Template parameters, as `sam deploy --parameter-overrides` gives them; each function's environment is
        # resolved from them (Globals + its own Environment), exactly as CloudFormation would.
        self.parameters = parameter_values(template, parameters or {})
        # One way into organization mode: OrganizationId given means an organization, made here in moto, whose
        # own id then replaces the one given (moto chooses organization ids).
        organization = organization or bool(self.parameters.get("OrganizationId"))
        if organization and account != ACCOUNT:
            raise ValueError(f"in organization mode the security account is moto's default one, {ACCOUNT}")
        self.role_arns = role_arns(template, account)  # the stack's roles, named as CloudFormation names them
        self.routes: list[Route] = event_routes(template)
        self.subscriptions: list[Subscription] = sns_subscriptions(template)
        self._ledger_definition = table_definition(template, LEDGER_TABLE_ID)
        self._data_path = deployed_data_path(template, self.root)
        self.ledger_table = ""
        self.dedup_key_arn = ""
        self.scheduled: list[str] = scheduled_functions(template)
        self.deliveries: list[Delivery] = []
        self.dead_letters: list[Delivery] = []
        self.recorder = CloudTrailRecorder(self._put_event)
        self._queues: list[tuple[str, Route, str]] = []  # (region, route, queue url)
        self._sns_queues: list[tuple[Subscription, str, str]] = []  # (subscription, queue url, subscription arn)
        self.copy_fidelity = CopyImageFidelity(account)
        # Regions running only region-forwarder.yaml: their AMI events reach the home bus unchanged. Organization
        # mode: org/member-forwarder.yaml in every region, the home region too, to the central bus.
        self.organization_mode = organization
        self.forwarding = RegionForwarding(self.root, self.home, organization=self.organization_mode)
        self._forwarded_routes: list[Route] = []  # the routes on the bus the forwarders target
        self._initial_forward_regions = forward_regions
        self._functions: dict[str, ModuleType] = {}
        self._roles = Deployed()  # IAM is global; functions and rules are per stack region
        self._deployed: dict[str, Deployed] = {}
        self.trail_arn = ""
        self._saved_env: dict[str, str | None] = {}
        self._current: Delivery | None = None
        self._permissions: dict[tuple[str, str, tuple[tuple[str, str], ...]], RolePermissions] = {}
        self._member_roles: MemberRoles | None = None
        self._member_roles_key: tuple[str, ...] = ()
        self.organization = organization
        # Every region the stack works in is forwarded from, in every account: its own, the members', the DR ones.
        dr_regions = [r.strip() for r in self.parameters.get("DrRegions", "").split(",") if r.strip()]
        self.member_regions = tuple(dict.fromkeys((*stack_regions, *member_regions, *dr_regions)))
        self.org: SandboxOrganization | None = None
        self._sessions: dict[str, MemberSession] = {}  # access key -> the member-role session STS issued a function
        self._member_people: dict[str, boto3.Session] = {}

    # --- lifecycle --------------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        try:
            return self._start()
        except BaseException:
            self.__exit__()  # a half-made sandbox must not leave moto running for the next one
            raise

    def _start(self) -> Sandbox:
        self._set_env(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": self.home,
                "POWERTOOLS_METRICS_NAMESPACE": "amiguard",
                "POWERTOOLS_SERVICE_NAME": "amiguard",
            }
            # MOTO_ACCOUNT_ID would override the account of assumed-role credentials: never in organization mode.
            | ({} if self.organization else {"MOTO_ACCOUNT_ID": self.account})
        )
        if self.organization and "MOTO_ACCOUNT_ID" in os.environ:
            self._saved_env.setdefault("MOTO_ACCOUNT_ID", os.environ["MOTO_ACCOUNT_ID"])
            del os.environ["MOTO_ACCOUNT_ID"]
        # Nothing amiguard reads is left in the process: each handler gets its own environment per invocation;
        # nor the shell's AWS profile or endpoint, which would send the sandbox's calls to a real account.
        for key in [key for key in os.environ if key.startswith(FUNCTION_ONLY_PREFIXES + SHELL_ONLY_PREFIXES)]:
            self._saved_env.setdefault(key, os.environ[key])
            del os.environ[key]
        self._mock = mock_aws()
        self._mock.start()
        # The same ids run after run (as long as calls come in the same order): a scenario reads the same.
        from moto.moto_api._internal import mock_random

        mock_random.seed(0)
        patch_moto()
        securityhub_gaps.patch_moto_securityhub()
        self._internal = boto3.Session(region_name=self.home)  # sandbox plumbing: never recorded
        if self.organization:
            self.org = SandboxOrganization(self._internal, self.account, self.root)
            self.org.create()
            self.parameters = parameter_values(self.template, {**self.parameters, "OrganizationId": self.org.id})
        self.topic_arn = self._internal.client("sns").create_topic(Name="amiguard-alerts")["TopicArn"]
        self._alert_queue = self._subscribe_queue(self.topic_arn, "amiguard-alert-inbox")
        self._deploy_ledger()
        self._deploy_sweep_queue()
        self._deploy_subscriptions()
        self._roles = deploy_roles(self._internal.client("iam"), self.template, self.role_arns)
        if self.org is not None:
            self.org.deploy_member_roles(
                {function: self.role_arns[function_role(self.template, function)] for function in ACTING_FUNCTIONS}
            )
        self.trail_arn = deploy_trail(
            self._internal.client("s3"), self._internal.client("cloudtrail"), self.account, self.home
        )
        for region in self.stack_regions:
            self._deployed[region] = deploy_functions(
                self._internal.client("lambda", region_name=region), self.template, self.stack(region)
            )
            self._deploy_rules(region)
        # The handlers' clients come from the default session, made as in Lambda (the template's AWS_DATA_PATH:
        # the trimmed service models); the scenario's people call AWS with botocore's full models.
        boto3.setup_default_session(botocore_session=lambda_botocore_session(self._data_path))
        self._people = boto3.Session(region_name=self.home)
        for session in (boto3.DEFAULT_SESSION, self._people):
            self.recorder.register(session.events)  # type: ignore[union-attr]
            self.copy_fidelity.register(session.events)  # type: ignore[union-attr]
        if self.organization_mode:
            self.forwarding.deploy(self._internal, self.home)
        self.forward_from(*self._initial_forward_regions)
        if self.org is not None:
            for member in self.org.members:
                self.org.forward(member.id, self.member_regions)
            # The central account is a member like the others: its regions without the stack forward too.
            self.forward_from(
                *(r for r in self.member_regions if r not in self.stack_regions + tuple(self.forwarding.regions))
            )
        handler_events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        handler_events.register("provide-client-params.*.*", self._note_call)
        # First of all before-call hooks: who signs the call (organization mode: which account, which session),
        # then the role's decision (the moto gaps answer some calls after them): a refused call is never sent.
        for events in (handler_events, self._people.events):
            events.register_first("before-call.*.*", self._note_caller)
        handler_events.register_first("before-call.*.*", self._authorize)  # type: ignore[arg-type]
        handler_events.register("before-call.securityhub.*", securityhub_gaps.answer)
        handler_events.register("after-call.sts.AssumeRole", self._note_session)
        functions = {route.function for route in self.routes} | {sub.function for sub in self.subscriptions}
        for name in sorted(functions | set(self.scheduled)):
            self._functions[name] = load_function(self.root, name)
        self.reconfigure()
        return self

    def __exit__(self, *_: object) -> None:
        if getattr(self, "_mock", None) is not None:
            self._mock.stop()
        boto3.DEFAULT_SESSION = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _set_env(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def reconfigure(self, **parameters: str) -> None:
        """Change template parameters (``Mode="audit"``) as a stack update would: handlers rebuild."""
        if "OrganizationId" in parameters and bool(parameters["OrganizationId"]) != self.organization_mode:
            raise ValueError("OrganizationId moves the rules to another bus: start a Sandbox with it instead")
        self.parameters = parameter_values(self.template, {**self.parameters, **parameters})
        for module in self._functions.values():
            module.build_service.cache_clear()

    def inject_faults(self) -> FaultInjector:
        """A fault injector in front of moto on every call the functions make (amiguard_cli.sandbox.faults).

        The handlers' clients are made again, so each carries the hook from its first call.
        """
        injector = FaultInjector(
            current_function=lambda: self._current.function if self._current else None,
            sleep=self.clock.sleep,
            now=self.clock.time,
        )
        injector.register(boto3.DEFAULT_SESSION.events)  # type: ignore[union-attr]
        self.reconfigure()
        return injector

    def stack(self, region: str | None = None) -> Stack:
        """The stack as CloudFormation resolves it in ``region``: parameters, the resources the sandbox made."""
        region = region or self.home
        deployed = self._deployed.get(region, Deployed())
        resources = {
            ALERT_TOPIC_ID: self.topic_arn,
            LEDGER_TABLE_ID: self.ledger_table,
            DEDUP_KEY_ID: self.dedup_key_arn,
        }
        if self.sweep_queue_url:
            resources[SWEEP_QUEUE_ID] = self.sweep_queue_url
        resources |= self._roles.refs | deployed.refs
        attributes = self._roles.attributes | deployed.attributes | self._sweep_queue_attributes
        stack = Stack(self.parameters, resources, self.account, region, attributes=attributes)
        return replace(stack, conditions=evaluate_conditions(self.template, stack))

    def function_identity(self, function: str) -> dict[str, Any]:
        """How CloudTrail records ``function``'s calls: a session of exactly the role the template gives it."""
        return function_identity(self.role_arns[function_role(self.template, function)], f"amiguard-{function}")

    def environment(self, function: str, region: str | None = None) -> dict[str, str]:
        """``function``'s environment as deployed (the layer's /opt/python paths point into this checkout)."""
        layer = str(self.root / "layers" / "amiguard")
        return {
            key: value.replace(LAMBDA_LAYER_PREFIX, layer + "/", 1) if value.startswith(LAMBDA_LAYER_PREFIX) else value
            for key, value in deployed_environment(self.template, function, self.stack(region)).items()
        }

    @contextmanager
    def _deployed_environment(self, function: str, region: str) -> Iterator[None]:
        """Run with exactly ``function``'s deployed environment (and the sandbox's credentials), then restore."""
        saved = dict(os.environ)
        for key in [key for key in os.environ if key.startswith(FUNCTION_ONLY_PREFIXES)]:
            del os.environ[key]
        os.environ.update(self.environment(function, region))
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    # --- plumbing ---------------------------------------------------------------------------------------

    def _subscribe_queue(self, topic_arn: str, name: str) -> str:
        sqs = self._internal.client("sqs")
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._internal.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
        return str(url)

    def _deploy_ledger(self) -> None:
        """The template's ``LedgerTable`` (keys, index, billing, SSE as declared; TTL and PITR on)."""
        if self._ledger_definition is None:
            return
        dynamodb = self._internal.client("dynamodb")
        self.ledger_table = "amiguard-ledger"
        dynamodb.create_table(TableName=self.ledger_table, **self._ledger_definition)
        dynamodb.update_time_to_live(
            TableName=self.ledger_table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
        if DEDUP_KEY_ID in (self.template.get("Resources") or {}):  # the stack's generated secret
            secret = self._internal.client("secretsmanager").create_secret(
                Name="amiguard-alert-dedup-key", SecretString=uuid.uuid4().hex + uuid.uuid4().hex
            )
            self.dedup_key_arn = secret["ARN"]

    def _deploy_sweep_queue(self) -> None:
        """The template's ``SweepQueue`` (organization mode's account sweeps), when it declares one, with its
        dead-letter queue; in organization mode the sweeper polls it (``SweepQueueMapping``)."""
        self.sweep_queue_url = ""
        self._sweep_queue_attributes: dict[str, str] = {}
        self._sweep_queue: PolledQueue | None = None
        resources = self.template.get("Resources") or {}
        if SWEEP_QUEUE_ID not in resources:
            return
        sqs = self._internal.client("sqs")
        self.sweep_queue_url = sqs.create_queue(QueueName="amiguard-sweep-queue")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.sweep_queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self._sweep_queue_attributes = {f"{SWEEP_QUEUE_ID}.Arn": arn["QueueArn"]}
        if not self.organization_mode:
            return
        properties = resources[SWEEP_QUEUE_ID].get("Properties") or {}
        redrive = properties.get("RedrivePolicy") or {}
        dead_letter = sqs.create_queue(QueueName="amiguard-sweep-dead-letters")["QueueUrl"] if redrive else ""
        self._sweep_queue = PolledQueue(
            url=self.sweep_queue_url,
            arn=arn["QueueArn"],
            region=self.home,
            max_receives=int(redrive.get("maxReceiveCount", 1_000_000)),
            visibility_timeout=int(properties.get("VisibilityTimeout", 30)),
            dead_letter_url=dead_letter,
        )

    def sweep_dead_letters(self) -> list[dict[str, Any]]:
        """The account sweeps the SweepQueue dead-lettered (parsed bodies), taken off the queue."""
        if self._sweep_queue is None or not self._sweep_queue.dead_letter_url:
            return []
        return list(drain(self._internal.client("sqs"), self._sweep_queue.dead_letter_url))

    def _deploy_subscriptions(self) -> None:
        """Each function's ``SNS`` event as a subscription (with its filter policy) of a queue the dispatcher drains."""
        topics = {ALERT_TOPIC_ID: self.topic_arn}
        sqs, sns = self._internal.client("sqs"), self._internal.client("sns")
        for index, subscription in enumerate(self.subscriptions):
            if subscription.topic not in topics:
                raise ValueError(f"{subscription.name}: the sandbox knows no topic {subscription.topic!r}")
            url = sqs.create_queue(QueueName=f"amiguard-sns-{subscription.function}-{index}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            attributes = {"FilterPolicy": json.dumps(subscription.filter_policy)} if subscription.filter_policy else {}
            subscribed = sns.subscribe(
                TopicArn=topics[subscription.topic], Protocol="sqs", Endpoint=arn, Attributes=attributes
            )
            self._sns_queues.append((subscription, url, subscribed["SubscriptionArn"]))

    def _deploy_rules(self, region: str) -> None:
        events = self._internal.client("events", region_name=region)
        sqs = self._internal.client("sqs", region_name=region)
        deployed = self._deployed.setdefault(region, Deployed())
        buses = deploy_event_buses(events, self.template, self.stack(region))
        deployed.refs |= buses.refs
        deployed.attributes |= buses.attributes
        forwarded_to = next(iter(buses.refs.values()), DEFAULT_BUS) if self.organization_mode else DEFAULT_BUS
        for index, route in enumerate(self.routes):
            url = sqs.create_queue(QueueName=f"amiguard-{route.function}-{index}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            rule = rule_name(route, self.stack(region))
            bus = rule_bus(route, self.stack(region))
            if region == self.home and bus == forwarded_to:
                self._forwarded_routes.append(route)
            rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps(route.pattern), EventBusName=bus)["RuleArn"]
            events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": route.function, "Arn": arn}])
            deployed.refs[route.logical_id] = rule
            deployed.attributes[f"{route.logical_id}.Arn"] = rule_arn
            self._queues.append((region, route, url))
        url = sqs.create_queue(QueueName="amiguard-schedule-ticks")["QueueUrl"]
        ticks = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        schedules = deploy_schedules(events, self.template, self.stack(region), ticks)
        deployed.refs |= schedules.refs
        deployed.attributes |= schedules.attributes

    def _put_event(self, region: str, detail_type: str, detail: dict[str, Any], account: str | None = None) -> None:
        resources = [f"arn:aws:ec2:{region}::image/{detail['ImageId']}"] if "ImageId" in detail else []
        entry: Any = {"Source": "aws.ec2", "DetailType": detail_type, "Detail": to_json(detail), "Resources": resources}
        if self.org is not None and account and account != self.account:
            self.org.put_event(account, region, entry)  # the member's bus: its forwarder sends it on
            return
        self._internal.client("events", region_name=region).put_events(Entries=[entry])

    def put_event(self, event: Mapping[str, Any]) -> None:
        """Put a whole EventBridge event (from a file) on the bus of its region."""
        region = str(event.get("region") or (event.get("detail") or {}).get("awsRegion") or self.home)
        if region not in self.stack_regions and region not in self.forwarding.regions:
            region = self.home
        self._internal.client("events", region_name=region).put_events(
            Entries=[
                {
                    "Source": str(event.get("source", "aws.ec2")),
                    "DetailType": str(event.get("detail-type")),
                    "Detail": to_json(event.get("detail") or {}),
                    "Resources": list(event.get("resources") or []),
                }
            ]
        )

    # --- the account, as the scenario sees it ------------------------------------------------------------

    def internal_client(self, service: str, region: str | None = None, *, account: str | None = None) -> Any:
        """A client for sandbox plumbing and seeding: its calls are not recorded in CloudTrail.

        ``account``: in organization mode, a client in that account of the organization."""
        session = self._internal if account in (None, self.account) else self._org().plumbing(str(account))
        return session.client(service, region_name=region or self.home)  # type: ignore[call-overload]

    def client(self, service: str, region: str | None = None, *, account: str | None = None) -> Any:
        """A client whose mutating EC2 calls are recorded in CloudTrail (made as the current identity).

        ``account``: in organization mode, a person's client in that account (recorded there, in its region);
        the identity is :meth:`as_identity`'s when it is of that account, else the account's default user."""
        session = self._people
        if account not in (None, self.account):
            if account not in self._member_people:
                self._member_people[str(account)] = self._org().session_sharing_hooks(self._people, str(account))
            session = self._member_people[str(account)]
        return session.client(service, region_name=region or self.home)  # type: ignore[call-overload]

    def _org(self) -> SandboxOrganization:
        if self.org is None:
            raise ValueError("the sandbox has no organization: Sandbox(organization=True)")
        return self.org

    @contextmanager
    def as_identity(self, identity: dict[str, Any]) -> Iterator[None]:
        with acting_as(identity):
            yield

    # --- dispatch ---------------------------------------------------------------------------------------

    def run(self, on_delivery: Callable[[Delivery], None] | None = None) -> list[Delivery]:
        """Deliver queued events to their functions until nothing is left; return what was delivered."""
        delivered: list[Delivery] = []
        for _ in range(MAX_ROUNDS):
            batch = self._receive_all()
            if not batch:
                return delivered
            for delivery in batch:
                self._invoke(delivery)
                delivered.append(delivery)
                if on_delivery:
                    on_delivery(delivery)
        raise SandboxLoop(f"events still flowing after {MAX_ROUNDS} rounds: amiguard is triggering itself")

    def forward_from(self, *regions: str) -> None:
        """Deploy region-forwarder.yaml in ``regions``: their AMI events go to the home region's bus."""
        for region in regions:
            if region in self.stack_regions:
                raise ValueError(f"{region} runs the stack: a forwarder there would deliver its events twice")
            self.forwarding.deploy(self._internal, region)

    def _receive_all(self) -> list[Delivery]:
        """Everything queued, each queue's events in a canonical order (see :func:`canonical_order`)."""
        batch = [
            Delivery(route.function, route.rule, self.home, event)
            for event in canonical_order(self.forwarding.receive(self._internal, self.account))
            for route in self._forwarded_routes
            if self.forwarding.matches(route.pattern, event)
        ]
        if self.org is not None:
            batch += [
                Delivery(route.function, route.rule, self.home, event)
                for event in canonical_order(self.org.receive())
                for route in self.routes
                if self.forwarding.matches(route.pattern, event)
            ]
        for region, route, url in self._queues:
            for event in canonical_order(drain(self._internal.client("sqs", region_name=region), url)):
                event.setdefault("account", self.account)
                batch.append(Delivery(route.function, route.rule, region, event))
        sqs = self._internal.client("sqs")
        if self._sweep_queue is not None:
            for body, event in self._sweep_queue.take(sqs):
                batch.append(Delivery(SWEEPER, SWEEP_MAPPING, self.home, event, polled=body))
        for subscription, url, subscription_arn in self._sns_queues:
            for notification in canonical_order(drain(sqs, url)):
                # SNS invokes a function with one record per message, never a batch.
                event = sns_lambda_event(notification, subscription_arn)
                batch.append(Delivery(subscription.function, subscription.name, self.home, event))
        return batch

    def _note_call(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if self._current is not None:
            self._current.calls.extend(iam_actions(model, params))
            context["amiguard_iam_params"] = dict(params)

    def permissions(self, function: str) -> RolePermissions:
        """What ``function``'s role allows as the template deploys it with the current parameters."""
        key = (function, "", tuple(sorted(self.parameters.items())))
        if key not in self._permissions:
            table = f"arn:aws:dynamodb:{self.home}:{self.account}:table/{self.ledger_table}"
            attributes = {f"{LEDGER_TABLE_ID}.Arn": table, f"{ALERT_TOPIC_ID}.TopicArn": self.topic_arn}
            attributes |= self._sweep_queue_attributes
            if alert_key := self._alert_key():
                attributes[f"{alert_key[0]}.Arn"] = alert_key[1]
            role = role_of(self.template, function)
            self._permissions[key] = role_permissions(self.template, role, self.stack(), attributes)
        return self._permissions[key]

    def member_permissions(self, role_name: str, account: str) -> RolePermissions:
        """What the member role ``role_name`` allows in ``account``: ``org/member-roles.yaml`` as deployed there
        with this stack's parameters."""
        if self.org is None:
            raise RuntimeError("member roles exist only in an organization sandbox")
        key = (self.org.id, *(f"{name}={value}" for name, value in sorted(self.parameters.items())))
        if self._member_roles is None or self._member_roles_key != key:
            self._member_roles_key = key
            self._member_roles = MemberRoles(
                self.root,
                self.parameters,
                central_account=self.account,
                organization_id=self.org.id,
                central_roles={
                    function: self.role_arns[function_role(self.template, function)] for function in ACTING_FUNCTIONS
                },
                home=self.home,
            )
        return self._member_roles.permissions(role_name, account)

    def _alert_key(self) -> tuple[str, str] | None:
        """(logical id, ARN) of the KMS key encrypting the alert topic (``KmsMasterKeyId: !Ref Key``), if any."""
        topic = (self.template.get("Resources") or {}).get(ALERT_TOPIC_ID, {})
        key = (topic.get("Properties") or {}).get("KmsMasterKeyId")
        if not (isinstance(key, dict) and isinstance(key.get("Ref"), str)):
            return None
        key_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.account}/{key['Ref']}")
        return str(key["Ref"]), f"arn:aws:kms:{self.home}:{self.account}:key/{key_id}"

    def _implied(self, model: Any, params: Mapping[str, Any], where: Caller) -> list[Authorization]:
        """What AWS authorizes on the caller's behalf: SNS encrypts a message for an encrypted topic with the
        publisher's permission to use the topic's key (moto's topic here is not encrypted)."""
        key = self._alert_key()
        if key is None or model.service_model.signing_name != "sns" or model.name != "Publish":
            return []
        if (params.get("TopicArn") or params.get("TargetArn")) != self.topic_arn:
            return []
        context = {"kms:ViaService": (f"sns.{where.region}.amazonaws.com",)}
        return [Authorization(action, key[1], context) for action in ("kms:GenerateDataKey", "kms:Decrypt")]

    def _resource_tags(self, arn: str, account: str | None = None) -> dict[str, str]:
        """Tags of an EC2 resource (``aws:ResourceTag/*`` conditions), read from moto's state."""
        from moto.ec2.models import ec2_backends

        parts = arn.split(":", 5)
        if len(parts) < 6 or parts[2] != "ec2" or "/" not in parts[5]:
            return {}
        backend = ec2_backends[account or self.account][parts[3]]
        tags: dict[str, str] = backend.tags.get(parts[5].split("/", 1)[1], {})
        return dict(tags)

    # --- organization mode: who signs each call ----------------------------------------------------------

    def _note_caller(self, request_signer: Any = None, context: dict[str, Any] | None = None, **_: Any) -> None:
        """Organization mode: the account and identity of the credentials signing a call (``amiguard_caller``).

        A member-role session STS issued to a function is recorded as that session (its account, its role
        under /amiguard/, its SourceIdentity); other credentials as the identity of :func:`acting_as`, or the
        account's default user where that identity is another account's.
        """
        if self.org is None or context is None or request_signer is None:
            return
        credentials = getattr(request_signer, "_credentials", None)
        if credentials is None:
            return
        access_key = credentials.get_frozen_credentials().access_key  # a deferred credential fetches here
        session = self._sessions.get(access_key)
        if session is not None:
            identity = assumed_role(
                session.role_name,
                session.session_name,
                path=ROLE_PATH,
                account=session.account,
                source_identity=session.source_identity,
            )
            context["amiguard_caller"] = {"account": session.account, "identity": identity, "session": session}
            return
        account = account_of_access_key(access_key)
        identity = current_identity()
        if identity.get("accountId") != account:
            identity = iam_user(DEFAULT_USER, account)
        context["amiguard_caller"] = {"account": account, "identity": identity, "session": None}

    def _note_session(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """A function assumed a role: remember the session its credentials belong to."""
        params = context.get("amiguard_iam_params") or {}
        credentials = parsed.get("Credentials") or {}
        role_arn = str(params.get("RoleArn", ""))
        if not credentials.get("AccessKeyId") or role_arn.count(":") < 5:
            return
        # STS dates the session on the sandbox's clock (moto dates it in real time: wrong on a virtual clock).
        seconds = int(params.get("DurationSeconds") or 3600)
        credentials["Expiration"] = datetime.fromtimestamp(self.clock.time() + seconds, UTC)
        self._sessions[str(credentials["AccessKeyId"])] = MemberSession(
            account=role_arn.split(":")[4],
            role_name=role_arn.rsplit("/", 1)[-1],
            session_name=str(params.get("RoleSessionName", "")),
            source_identity=params.get("SourceIdentity"),
        )

    def _organization_context(
        self, model: Any, params: Mapping[str, Any], requests: list[Authorization]
    ) -> list[Authorization]:
        """The condition keys and resources only the organization knows: ``aws:ResourceOrgID`` of a role to
        assume, the ARN of an account Organizations describes."""
        if self.org is None:
            return requests
        operation = f"{model.service_model.signing_name}:{model.name}"
        if operation == "sts:AssumeRole":
            role_account = str(params.get("RoleArn", "")).split(":")[4] if ":" in str(params.get("RoleArn", "")) else ""
            org = self.org.organization_of(role_account)
            extra = {"aws:ResourceOrgID": (org,)} if org else {}
            if params.get("SourceIdentity"):
                extra["sts:SourceIdentity"] = (str(params["SourceIdentity"]),)
            found = [Authorization(r.action, r.resource, {**r.context, **extra}) for r in requests]
            if params.get("SourceIdentity"):
                found.append(Authorization("sts:SetSourceIdentity", found[0].resource, found[0].context))
            return found
        if operation == "organizations:DescribeAccount":
            arn = f"arn:aws:organizations::{self.account}:account/{self.org.id}/{params.get('AccountId')}"
            return [Authorization(r.action, arn, r.context) for r in requests]
        return requests

    def _authorize(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[CannedHttp, dict[str, Any]] | None:
        """Refuse, as AWS would, a call the invoked function's role does not allow (before it is sent)."""
        delivery = self._current
        caller = context.get("amiguard_caller") or {}
        account = str(caller.get("account") or self.account)
        region = str(context.get("client_region") or self.home)
        service = model.service_model.signing_name
        if self.org is not None and service == "ec2" and (account, region) in self.org.disabled_regions:
            message = "AWS was not able to validate the provided access credentials"
            return canned({"Error": {"Code": "AuthFailure", "Message": message}}, 401)
        if delivery is None or "amiguard_iam_params" not in context:
            return None
        where = Caller(account, region)
        params = context["amiguard_iam_params"]
        requests = authorizations(model, params, where) + self._implied(model, params, where)
        requests = self._organization_context(model, params, requests)
        session: MemberSession | None = caller.get("session")
        role = (
            self.member_permissions(session.role_name, account)
            if session is not None
            else self.permissions(delivery.function)
        )
        refused = role.denied(requests, lambda arn: self._resource_tags(arn, account))
        identity = (
            str(caller["identity"]["arn"]) if session is not None else self.function_identity(delivery.function)["arn"]
        )
        if refused is None:
            if self.org is not None and model.name == "AssumeRole" and service == "sts":
                role_arn = self.role_arns[function_role(self.template, delivery.function)]
                if reason := self.org.refusal(role_arn, params):
                    delivery.denied.append(f"sts:AssumeRole on {params.get('RoleArn')} ({reason})")
                    message = (
                        f"User: {identity} is not authorized to perform: sts:AssumeRole on resource: "
                        f"{params.get('RoleArn')}"
                    )
                    return canned({"Error": {"Code": "AccessDenied", "Message": message}}, 403)
            return None
        code, status = ACCESS_DENIED.get(service, ACCESS_DENIED_DEFAULT)
        if service == "sns" and refused.request.action.startswith("kms:"):
            code, status = "KMSAccessDenied", 400  # SNS's own error for a key its caller may not use
        message = (
            f"User: {identity} is not authorized to perform: {refused.request.action} on resource: "
            f"{refused.request.resource} {refused.explanation}"
        )
        if service == "ec2":
            message = f"You are not authorized to perform this operation. {message}"
        delivery.denied.append(f"{refused.request.action} on {refused.request.resource}")
        return canned({"Error": {"Code": code, "Message": message}}, status)

    def _invoke(self, delivery: Delivery) -> None:
        """Lambda's asynchronous invocation: up to LAMBDA_ATTEMPTS attempts, each with the function's Timeout,
        1 then 2 minutes apart; what still fails goes to the failure destination (:attr:`dead_letters`)."""
        module = self._functions[delivery.function]
        timeout = function_timeout(self.template, delivery.function)
        polled = self._sweep_queue if delivery.polled and self._sweep_queue is not None else None
        if polled is not None and polled.receives.get(delivery.polled, 0) > 1:
            self.clock.advance(polled.visibility_timeout)  # a failed record is received again only after this
        self._current = delivery
        for attempt in range(1 if polled is not None else LAMBDA_ATTEMPTS):  # a poller invokes synchronously
            if attempt:
                self.clock.advance(LAMBDA_RETRY_DELAYS[attempt - 1])
            delivery.attempts += 1
            deadline = self.clock.time() + timeout
            context = FakeContext(
                function_name=f"amiguard-{delivery.function}",
                invoked_function_arn=(
                    f"arn:aws:lambda:{delivery.region}:{self.account}:function:amiguard-{delivery.function}"
                ),
                deadline=deadline,
                clock=self.clock,
            )
            output = io.StringIO()
            try:
                with (
                    self._deployed_environment(delivery.function, delivery.region),
                    acting_as(self.function_identity(delivery.function)),
                    redirect_stdout(output),
                    _logs_to(output),
                    self.clock.deadline(deadline),
                ):
                    result = module.lambda_handler(json.loads(json.dumps(delivery.event)), context)
                delivery.output += output.getvalue()
                if self.clock.time() > deadline:
                    raise InvocationKilled("returned after the deadline")
                delivery.result, delivery.error = result, None
                break
            except InvocationKilled:
                delivery.output += output.getvalue()
                delivery.timeouts += 1
                delivery.error = f"Task timed out after {timeout:.2f} seconds"
                delivery.failures.append(delivery.error)
            except Exception as error:
                delivery.output += output.getvalue()  # the function's own account of the failure
                delivery.error = f"{type(error).__name__}: {error}"
                delivery.failures.append(delivery.error)
        self._current = None
        if polled is not None:
            failed = record_failed(delivery.result, delivery.error)
            if polled.settle(self._internal.client("sqs"), delivery.polled, failed=failed):
                self.dead_letters.append(delivery)
        elif delivery.error:
            self.dead_letters.append(delivery)
        self.deliveries.append(delivery)

    def redrive(self, function: str | None = None) -> list[Delivery]:
        """Send what the failure destination holds (of ``function``, or all) back to the function, as an
        operator does once the cause is fixed: each record's event is invoked again (asynchronously)."""
        taken = [d for d in self.dead_letters if function is None or d.function == function]
        self.dead_letters = [d for d in self.dead_letters if d not in taken]
        redriven = []
        for dead in taken:
            delivery = Delivery(dead.function, "redrive", dead.region, dead.event)
            self._invoke(delivery)
            redriven.append(delivery)
        return redriven

    def redeliver(self, delivery: Delivery) -> Delivery:
        """The same event delivered once more (EventBridge and SNS deliver at least once)."""
        again = Delivery(delivery.function, delivery.rule, delivery.region, delivery.event)
        self._invoke(again)
        return again

    def invoke(self, function: str, event: dict[str, Any]) -> Delivery:
        """Call one function's handler directly with ``event`` (no routing)."""
        delivery = Delivery(function, "direct", self.home, event)
        self._invoke(delivery)
        return delivery

    def enable_security_hub(self, *regions: str, account: str | None = None) -> None:
        """Turn Security Hub on in ``regions`` (default: the home region) of ``account`` (default: the stack's),
        as an account administrator would."""
        for region in regions or (self.home,):
            client = self.internal_client("securityhub", region, account=account)
            client.enable_security_hub(EnableDefaultStandards=False)

    def security_hub_findings(self, region: str | None = None, account: str | None = None) -> list[dict[str, Any]]:
        """The findings Security Hub holds in ``region`` (default: home) of ``account`` (default: the stack's),
        as GetFindings returns them."""
        client = self.internal_client("securityhub", region or self.home, account=account)
        findings: list[dict[str, Any]] = [dict(found) for found in client.get_findings(MaxResults=100)["Findings"]]
        return findings

    def alerts(self) -> list[Alert]:
        """Alerts published to the SNS topic since the last call, as an SQS subscriber receives them."""
        received: list[Alert] = []
        for envelope in drain(self._internal.client("sqs"), self._alert_queue):
            attributes = {k: v["Value"] for k, v in (envelope.get("MessageAttributes") or {}).items()}
            received.append(Alert(envelope.get("Subject", ""), json.loads(envelope["Message"]), attributes))
        return received
