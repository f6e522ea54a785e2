"""The alert path is built at the first alert: a cold start revokes before making SNS/DynamoDB clients."""

from amiguard.models.findings import Finding, FindingType, Severity
from amiguard.services.alerting import DeferredAlerts


class Recorder:
    def __init__(self):
        self.published = []

    def publish(self, finding):
        self.published.append(finding)


def test_alert_path_is_built_once_and_only_when_the_first_alert_is_published():
    built = []

    def build():
        built.append(Recorder())
        return built[-1]

    alerts = DeferredAlerts(build)
    assert built == []  # nothing made at start-up

    finding = Finding(type=FindingType.PUBLIC_SHARE, severity=Severity.CRITICAL, summary="s", account="1", region="r")
    alerts.publish(finding)
    alerts.publish(finding)

    assert len(built) == 1
    assert built[0].published == [finding, finding]
