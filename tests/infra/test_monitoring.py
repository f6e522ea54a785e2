"""Monitoring: every function's errors and every queue's messages raise an alarm; critical findings too;
the ledger keeps its promises (TTL, PITR, SSE); the notifier is wired to the alert topic with dead letters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import resources_of_type

pytestmark = pytest.mark.infra

MAX_METRICS_PER_ALARM = 10  # CloudWatch's limit for metric-math alarms


def _watched(alarms: dict[str, Any], namespace: str, dimension: str) -> dict[str, str]:
    """Resource logical id → the alarm watching it, for metrics of ``namespace`` keyed by ``dimension``."""
    watched = {}
    for alarm_id, alarm in alarms.items():
        for query in alarm["Properties"].get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") != namespace:
                continue
            for item in metric.get("Dimensions", []):
                value = item["Value"]
                if item["Name"] == dimension:
                    target = value.get("Ref") or value.get("Fn::GetAtt", [None])[0]
                    watched[target] = alarm_id
    return watched


def test_every_function_errors_alarm_when_deployed(template: dict[str, Any]) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")

    watched = _watched(alarms, "AWS/Lambda", "FunctionName")

    assert set(functions) - set(watched) == set(), "add these functions' Errors to FunctionErrorsAlarm"


def test_every_queue_alarms_when_a_message_waits_in_it(template: dict[str, Any]) -> None:
    # Every queue where a message waits only when something failed: all but work queues (those with a redrive
    # policy, whose messages are work in progress and whose dead-letter queue is watched instead).
    queues = {
        queue_id: queue
        for queue_id, queue in resources_of_type(template, "AWS::SQS::Queue").items()
        if "RedrivePolicy" not in queue.get("Properties", {})
    }
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")

    watched = _watched(alarms, "AWS/SQS", "QueueName")

    assert set(queues) - set(watched) == set(), "add these queues to FailureQueuesAlarm or DeliveryDeadLettersAlarm"


def test_metric_math_alarms_stay_within_cloudwatch_limits_when_functions_are_added(template: dict[str, Any]) -> None:
    for alarm_id, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").items():
        metrics = alarm["Properties"].get("Metrics", [])
        assert len([m for m in metrics if "MetricStat" in m]) <= MAX_METRICS_PER_ALARM, f"{alarm_id}: split it"
        assert sum(1 for m in metrics if m.get("ReturnData", True)) <= 1, f"{alarm_id}: one series must be returned"


def test_critical_finding_alarms_on_the_emf_metric_the_code_writes(template: dict[str, Any]) -> None:
    from amiguard.observability import NAMESPACE

    alarm = template["Resources"]["CriticalFindingAlarm"]["Properties"]

    assert (alarm["Namespace"], alarm["MetricName"]) == (NAMESPACE, "FindingsBySeverity")
    assert {"Name": "severity", "Value": "critical"} in alarm["Dimensions"]
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_alarm_notifies_the_alarm_topic_when_it_fires(template: dict[str, Any]) -> None:
    for alarm_id, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], alarm_id
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", alarm_id


def test_dashboard_shows_findings_remediations_drops_errors_and_alarms(template: dict[str, Any]) -> None:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # ${...} are CloudFormation substitutions; what is left must be valid JSON.
    widgets = json.loads(body.replace("${", "").replace('}"', '"'))["widgets"]
    text = json.dumps(widgets)

    for metric in ("FindingsBySeverity", "Findings", "Remediations", "ExposureSeconds", "ReplicationSeconds"):
        assert f"{metric}" in text
    assert "EventsDropped" in text and "AWS/Lambda" in text
    assert any(widget["type"] == "alarm" for widget in widgets)


def test_ledger_table_keeps_its_promises_when_deployed(template: dict[str, Any]) -> None:
    table = template["Resources"]["LedgerTable"]["Properties"]

    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True and table["SSESpecification"]["SSEType"] == "KMS"
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-time"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["gsi1pk", "gsi1sk"]
    # keys only: a row's alert-state update writes nothing to the index (amiguard/aws/ledger.py, "Write units")
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def _actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_alert_publishers_may_write_the_ledger_and_nothing_else_in_it(template: dict[str, Any]) -> None:
    roles = resources_of_type(template, "AWS::IAM::Role")
    # The ledger grants live in a policy of their own per role (the table's resource policy names the roles).
    ledger_policies = {
        policy["Properties"]["RoleName"]["Ref"]: policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in resources_of_type(template, "AWS::IAM::RolePolicy").values()
        if any(
            str(a).startswith("dynamodb:")
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            for a in _actions(s)
        )
    }
    for role_id, role in roles.items():
        statements = [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        actions = {a for s in statements for a in _actions(s)}
        assert not any(a.startswith("dynamodb:") for a in actions), f"{role_id}: ledger grants belong in its policy"
        dynamo = ledger_policies.get(role_id, [])
        if "sns:Publish" in actions:
            assert dynamo, f"{role_id} publishes alerts without the ledger (de-duplication and audit trail)"
        for statement in dynamo:
            assert statement["Resource"] in (
                {"Fn::GetAtt": ["LedgerTable", "Arn"]},
                {"Fn::Sub": "${LedgerTable.Arn}/index/by-time"},
            ), role_id
            assert set(_actions(statement)) <= {
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:Query",
                "dynamodb:BatchGetItem",
            }


WRITE_ACTIONS = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
}


def test_only_the_stacks_function_roles_may_write_the_ledger_when_deployed(template: dict[str, Any]) -> None:
    table = template["Resources"]["LedgerTable"]["Properties"]
    functions = resources_of_type(template, "AWS::Serverless::Function")
    function_roles = {function["Properties"]["Role"]["Fn::GetAtt"][0] for function in functions.values()}

    [statement] = table["ResourcePolicy"]["PolicyDocument"]["Statement"]

    assert (statement["Effect"], statement["Principal"], statement["Resource"]) == ("Deny", "*", "*")
    # data-plane writes only: CloudFormation (the deployer's credentials) still manages the table
    assert set(statement["Action"]) == WRITE_ACTIONS
    excepted = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    assert {ref["Fn::GetAtt"][0] for ref in excepted} == function_roles
    assert all(ref["Fn::GetAtt"][1] == "Arn" for ref in excepted)


def test_only_the_alerting_functions_may_read_the_dedup_key_when_deployed(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    secret = resources["AlertDedupKey"]["Properties"]["GenerateSecretString"]
    [statement] = resources["AlertDedupKeyPolicy"]["Properties"]["ResourcePolicy"]["Statement"]
    readers = {ref["Fn::GetAtt"][0] for ref in statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]}
    functions = resources_of_type(template, "AWS::Serverless::Function")
    keyed = {
        function["Properties"]["Role"]["Fn::GetAtt"][0]
        for function in functions.values()
        if "AMIGUARD_DEDUP_KEY_SECRET" in function["Properties"].get("Environment", {}).get("Variables", {})
    }

    assert secret["PasswordLength"] >= 32
    assert (statement["Effect"], statement["Action"]) == ("Deny", "secretsmanager:GetSecretValue")
    assert (
        readers == keyed == {"PublicGuardRole", "TagEnforcerRole", "DrReplicatorRole", "SweeperRole", "TamperGuardRole"}
    )


def test_every_alerting_function_gets_realert_hours_and_the_dedup_key_when_deployed(template: dict[str, Any]) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    alerting = {
        function_id: function for function_id, function in functions.items() if function_id != "NotifierFunction"
    }
    assert len(alerting) == len(functions) - 1  # the notifier reads the topic; every other function alerts
    for function_id, function in alerting.items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert variables.get("AMIGUARD_REALERT_HOURS") == {"Ref": "RealertHours"}, function_id
        assert variables.get("AMIGUARD_DEDUP_KEY_SECRET") == {"Ref": "AlertDedupKey"}, function_id
    assert template["Parameters"]["RealertHours"]["Default"] == 168


def test_notifier_is_subscribed_to_the_alert_topic_with_a_dead_letter_queue(deployed_template: dict[str, Any]) -> None:
    subscriptions = resources_of_type(deployed_template, "AWS::SNS::Subscription")
    lambda_subscriptions = [s["Properties"] for s in subscriptions.values() if s["Properties"]["Protocol"] == "lambda"]

    [subscription] = lambda_subscriptions
    assert subscription["TopicArn"] == {"Ref": "AlertTopic"}
    assert subscription["Endpoint"] == {"Fn::GetAtt": ["NotifierFunction", "Arn"]}
    assert subscription["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["NotifierSubscriptionDeadLetterQueue", "Arn"]}
    }


def test_only_the_notifier_may_read_the_slack_secret_and_only_when_one_is_given(template: dict[str, Any]) -> None:
    policies = resources_of_type(template, "AWS::IAM::RolePolicy")
    readers = {
        policy_id: policy
        for policy_id, policy in policies.items()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "secretsmanager:GetSecretValue" in statement["Action"]
    }

    [policy] = readers.values()
    assert policy["Condition"] == "HasSlackWebhook"
    assert policy["Properties"]["RoleName"] == {"Ref": "NotifierRole"}
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Resource"] == {"Ref": "SlackWebhookSecretArn"}


def _function_errors_widget(template: dict[str, Any]) -> dict[str, Any]:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body.replace("${", "").replace('}"', '"'))["widgets"]
    [widget] = [w for w in widgets if w.get("properties", {}).get("title") == "Function errors"]
    return dict(widget)


def test_function_errors_widget_shows_every_function_of_the_template_when_deployed(template: dict[str, Any]) -> None:
    functions = set(resources_of_type(template, "AWS::Serverless::Function"))

    shown = {
        metric[3]
        for metric in _function_errors_widget(template)["properties"]["metrics"]
        if metric[:3] == ["AWS/Lambda", "Errors", "FunctionName"]
    }

    assert functions - shown == set(), "add these functions' Errors to the dashboard's Function errors widget"
    assert shown - functions == set(), "the Function errors widget names functions the template does not have"


def test_every_per_function_alarm_watches_every_function_of_the_template_when_deployed(
    template: dict[str, Any],
) -> None:
    functions = set(resources_of_type(template, "AWS::Serverless::Function"))
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")

    for alarm_id, alarm in alarms.items():
        watched = {
            item["Value"]["Ref"]
            for query in alarm["Properties"].get("Metrics", [])
            if query.get("MetricStat", {}).get("Metric", {}).get("Namespace") == "AWS/Lambda"
            for item in query["MetricStat"]["Metric"].get("Dimensions", [])
            if item["Name"] == "FunctionName"
        }
        if watched:
            assert functions - watched == set(), f"{alarm_id} does not watch these functions"
