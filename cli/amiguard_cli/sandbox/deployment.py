"""The stack's own resources in the sandbox account, as CloudFormation would create them: each function's IAM
role, the Lambda functions (code never run by moto: the dispatcher calls the handlers), the schedule rules and
a CloudTrail trail logging every region. What ``!Ref`` and ``!GetAtt`` return for them feeds the functions'
environments, so tamper_guard and the sweeper know the stack's own names exactly as deployed."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from amiguard_cli.sandbox.cfn import Route, Stack, function_events, resources_of_type

DEFAULT_BUS = "default"
TRAIL_NAME = "amiguard-sandbox-trail"  # the account's trail (not part of the stack): EventBridge's CloudTrail feed


@dataclass
class Deployed:
    """What ``!Ref`` (``refs``) and ``!GetAtt`` (``attributes``, "LogicalId.Attribute") return, in one region."""

    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)


def _code() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    raise RuntimeError('sandbox only')\n")
    return buffer.getvalue()


def deploy_roles(iam: Any, template: dict[str, Any], arns: dict[str, str]) -> Deployed:
    """Every ``AWS::IAM::Role`` of the template (IAM is global: once per account), with the names
    CloudFormation gives them (``arns``: :func:`amiguard_cli.sandbox.cfn.role_arns`)."""
    deployed = Deployed()
    for role_id, resource in resources_of_type(template, "AWS::IAM::Role").items():
        properties = resource["Properties"]
        name = arns[role_id].rsplit("/", 1)[-1]
        role = iam.create_role(
            RoleName=name,
            Path=properties.get("Path", "/"),
            AssumeRolePolicyDocument=json.dumps(properties["AssumeRolePolicyDocument"]),
        )["Role"]
        deployed.refs[role_id] = name
        deployed.attributes[f"{role_id}.Arn"] = role["Arn"]
    return deployed


def deploy_functions(lambda_: Any, template: dict[str, Any], stack: Stack) -> Deployed:
    """Every ``AWS::Serverless::Function`` (its name, role and reserved concurrency as the template says)."""
    deployed = Deployed()
    code = _code()
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        properties = resource["Properties"]
        name = stack.resolve(properties["FunctionName"]) if "FunctionName" in properties else f"amiguard-{logical_id}"
        created = lambda_.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=stack.resolve(properties["Role"]),
            Handler=str(properties.get("Handler", "app.lambda_handler")),
            Code={"ZipFile": code},
        )
        if "ReservedConcurrentExecutions" in properties:
            lambda_.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=int(properties["ReservedConcurrentExecutions"])
            )
        deployed.refs[logical_id] = name
        deployed.attributes[f"{logical_id}.Arn"] = created["FunctionArn"]
    return deployed


def deploy_event_buses(events: Any, template: dict[str, Any], stack: Stack) -> Deployed:
    """Every ``AWS::Events::EventBus`` whose ``Condition`` holds (organization mode's central bus), by its ``Name``.

    moto does not enforce its policy (``AWS::Events::EventBusPolicy``): the infra tests check it on the template.
    """
    deployed = Deployed()
    for logical_id, resource in resources_of_type(template, "AWS::Events::EventBus").items():
        if "Condition" in resource and not stack.conditions.get(resource["Condition"], False):
            continue
        name = stack.resolve(resource["Properties"]["Name"])
        arn = events.create_event_bus(Name=name)["EventBusArn"]
        deployed.refs[logical_id] = name
        deployed.attributes[f"{logical_id}.Arn"] = arn
        deployed.attributes[f"{logical_id}.Name"] = name
    return deployed


def rule_bus(route: Route, stack: Stack) -> str:
    """The bus ``route``'s rule is on: its ``EventBusName`` as resolved in ``stack`` (``default`` when left out)."""
    return (stack.resolve_optional(route.bus) if route.bus is not None else None) or DEFAULT_BUS


def rule_name(route: Route, stack: Stack) -> str:
    """The name of the rule SAM generates for ``route``: its RuleName, or one the sandbox makes up."""
    return stack.resolve(route.name) if route.name is not None else route.rule.replace(".", "-")


def deploy_schedules(events: Any, template: dict[str, Any], stack: Stack, target_arn: str) -> Deployed:
    """Every ``Schedule`` event as the rule SAM generates. moto never fires a schedule (the tests invoke the
    function) but hands every event put on the bus to a rule without a pattern, and cannot deliver to Lambda:
    the target stands in for the function as a queue nobody reads, like every route's queue."""
    deployed = Deployed()
    for event in function_events(template, "Schedule"):
        name = event.rule.replace(".", "-")
        function_id = event.rule.split(".", 1)[0]
        arn = events.put_rule(Name=name, ScheduleExpression=stack.resolve(event.properties["Schedule"]))["RuleArn"]
        events.put_targets(Rule=name, Targets=[{"Id": function_id, "Arn": target_arn}])
        logical_id = event.rule.replace(".", "")
        deployed.refs[logical_id] = name
        deployed.attributes[f"{logical_id}.Arn"] = arn
    return deployed


def deploy_trail(s3: Any, cloudtrail: Any, account: str, region: str) -> str:
    """A multi-region trail logging management events, as the README asks of the account; its ARN."""
    bucket = f"amiguard-sandbox-trail-{account}"
    # S3 wants the bucket's region named everywhere but us-east-1.
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **location)
    trail = cloudtrail.create_trail(Name=TRAIL_NAME, S3BucketName=bucket, IsMultiRegionTrail=True)
    cloudtrail.start_logging(Name=TRAIL_NAME)
    return str(trail["TrailARN"])
