"""The dashboard: every function's errors, exposure and replication on their own axes, every failure queue's
depth, and the last findings from the functions' own logs."""

from __future__ import annotations

from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import resources_of_type
from tests.dashboard import dashboard_widgets, last_findings_query, query_sources

pytestmark = pytest.mark.infra


def _widget(template: dict[str, Any], title_start: str) -> dict[str, Any]:
    [widget] = [w for w in dashboard_widgets(template) if w["properties"].get("title", "").startswith(title_start)]
    return widget


def test_exposure_and_replication_are_on_separate_axes_when_charted(template: dict[str, Any]) -> None:
    widget = _widget(template, "Exposure")

    axes = {metric[1]: metric[-1].get("yAxis") for metric in widget["properties"]["metrics"]}

    assert axes == {"ExposureSeconds": "left", "ReplicationSeconds": "right"}
    assert set(widget["properties"]["yAxis"]) == {"left", "right"}


def test_failure_queue_widget_shows_every_failure_queue_of_the_template_when_deployed(
    template: dict[str, Any],
) -> None:
    queues = {
        queue_id
        for queue_id in resources_of_type(template, "AWS::SQS::Queue")
        if queue_id.endswith(("FailureQueue", "DeadLetterQueue"))
    }

    shown = {
        metric[3].removesuffix(".QueueName")
        for metric in _widget(template, "Failure queues")["properties"]["metrics"]
        if metric[:3] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"]
    }

    assert queues and queues - shown == set(), "add these queues to the dashboard's Failure queues widget"
    assert shown - queues == set()


def test_last_findings_query_reads_every_functions_log_group_when_deployed(template: dict[str, Any]) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    log_groups = {
        function_id: function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        for function_id, function in functions.items()
    }

    sources = query_sources(last_findings_query(template))

    missing = {f: group for f, group in log_groups.items() if group not in sources}
    assert missing == {}, "add these functions' log groups to the Last findings query (SOURCE '${…}')"
    assert sources - set(log_groups.values()) == set()
