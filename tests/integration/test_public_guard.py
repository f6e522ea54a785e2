"""public_guard under the sandbox: events routed by template.yaml's rules to the real handler; assertions
on the resulting launch/create-volume permissions and on the alerts an SQS subscriber of the topic gets."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from amiguard.aws.posted import alert_id
from amiguard.models.findings import Finding
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user
from tests.conftest import STRANGER, TRUSTED_PARTNER, bake_image


def launch_permissions(sb, image_id):
    return sb.client("ec2").describe_image_attribute(ImageId=image_id, Attribute="launchPermission")[
        "LaunchPermissions"
    ]


def results(deliveries, function="public_guard"):
    return [d.result for d in deliveries if d.function == function]


def test_public_share_is_revoked_and_alerted_when_ami_is_made_public(sandbox):
    image = bake_image(sandbox)
    sandbox.run()
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}]}
        )

    sandbox.run()

    assert launch_permissions(sandbox, image["ImageId"]) == []
    [alert] = sandbox.alerts()
    assert alert.message["type"] == "public-share"
    assert alert.message["severity"] == "critical"
    assert alert.message["action"] == "revoked"
    assert alert.message["image_name"] == "golden-base"
    assert alert.message["actor"] == "arn:aws:iam::123456789012:user/dev-bob"
    assert alert.attributes == {
        "severity": "critical",
        "type": "public-share",
        "account": "123456789012",
        "region": "us-east-1",
        "dedup_id": alert_id(Finding.model_validate(alert.message)),
    }
    assert alert.message["exposure_seconds"] >= 0


def test_only_untrusted_grants_are_removed_when_shared_with_stranger_and_partner(sandbox):
    image = bake_image(sandbox)
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"UserId": STRANGER}, {"UserId": TRUSTED_PARTNER}]}
        )

    sandbox.run()

    assert launch_permissions(sandbox, image["ImageId"]) == [{"UserId": TRUSTED_PARTNER}]
    [alert] = sandbox.alerts()
    assert alert.message["type"] == "untrusted-share" and alert.message["severity"] == "high"
    assert alert.message["evidence"]["untrusted_principals"] == [STRANGER]


def test_public_and_untrusted_are_both_revoked_when_added_in_one_call(sandbox):
    image = bake_image(sandbox)
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}, {"UserId": STRANGER}]}
        )

    sandbox.run()

    assert launch_permissions(sandbox, image["ImageId"]) == []
    assert sorted(a.message["type"] for a in sandbox.alerts()) == ["public-share", "untrusted-share"]


def test_legacy_operation_type_share_is_revoked_when_recorded_without_attribute_type(sandbox):
    image = bake_image(sandbox)
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], Attribute="launchPermission", OperationType="add", UserIds=[STRANGER]
        )
    assert "attributeType" not in sandbox.recorder.records[-1]["requestParameters"]

    sandbox.run()

    assert launch_permissions(sandbox, image["ImageId"]) == []
    assert [a.message["type"] for a in sandbox.alerts()] == ["untrusted-share"]


def test_nothing_changes_and_alert_says_would_revoke_when_mode_is_audit(sandbox):
    sandbox.reconfigure(Mode="audit")
    image = bake_image(sandbox)
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}]}
        )

    sandbox.run()

    assert launch_permissions(sandbox, image["ImageId"]) == [{"Group": "all"}]
    [alert] = sandbox.alerts()
    assert alert.message["action"] == "would-revoke"
    assert alert.message["exposure_seconds"] is None


def test_duplicate_event_makes_no_second_action_or_alert_when_delivered_twice(sandbox):
    image = bake_image(sandbox)
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}]}
        )
    first = sandbox.run()
    event = next(d.event for d in first if d.event["detail"]["eventName"] == "ModifyImageAttribute")

    sandbox.put_event(event)
    second = sandbox.run()

    assert [r["status"] for r in results(second)] == ["clean"]
    assert len(sandbox.alerts()) == 1


def test_own_revocation_triggers_no_further_action_when_its_event_comes_back(sandbox):
    image = bake_image(sandbox)
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}]}
        )

    deliveries = sandbox.run()

    # Other functions' rules (and SNS deliveries or state changes, which name no identity) are not the point.
    own = [
        d
        for d in deliveries
        if d.function == "public_guard" and d.event["detail"].get("userIdentity", {}).get("type") == "AssumedRole"
    ]
    assert len(own) == 1
    assert own[0].result["reason"] == "amiguard-own-action"


def test_allow_listed_ami_stays_public_when_published_on_purpose(sandbox):
    image = bake_image(sandbox)
    sandbox.reconfigure(PublicAllowlist=image["ImageId"])
    with acting_as(iam_user("release-bot")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}]}
        )

    deliveries = sandbox.run()

    assert launch_permissions(sandbox, image["ImageId"]) == [{"Group": "all"}]
    assert results(deliveries)[-1]["reason"] == "allow-listed"
    assert sandbox.alerts() == []


def test_description_change_is_ignored_when_only_another_attribute_changed(sandbox):
    image = bake_image(sandbox)
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(ImageId=image["ImageId"], Description={"Value": "new text"})

    deliveries = sandbox.run()

    assert results(deliveries)[-1]["reason"] == "other-attribute"
    assert sandbox.alerts() == []


def test_public_snapshot_is_revoked_and_names_its_ami_when_made_public(sandbox):
    image = bake_image(sandbox)
    snapshot_id = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    ec2 = sandbox.client("ec2")
    with acting_as(iam_user("dev-bob")):
        ec2.modify_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"]
        )

    sandbox.run()

    permissions = ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    assert permissions["CreateVolumePermissions"] == []
    [alert] = sandbox.alerts()
    assert alert.message["type"] == "public-snapshot" and alert.message["severity"] == "critical"
    assert alert.message["snapshot_id"] == snapshot_id
    assert alert.message["evidence"]["backed_images"] == [image["ImageId"]]


def test_untrusted_snapshot_share_is_removed_when_shared_with_stranger(sandbox):
    image = bake_image(sandbox)
    snapshot_id = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    ec2 = sandbox.client("ec2")
    with acting_as(iam_user("dev-bob")):
        ec2.modify_snapshot_attribute(
            SnapshotId=snapshot_id,
            Attribute="createVolumePermission",
            OperationType="add",
            UserIds=[STRANGER, TRUSTED_PARTNER],
        )

    sandbox.run()

    permissions = ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    assert permissions["CreateVolumePermissions"] == [{"UserId": TRUSTED_PARTNER}]
    assert [a.message["type"] for a in sandbox.alerts()] == ["untrusted-share"]


def test_block_public_access_is_restored_when_someone_disables_it(sandbox):
    ec2 = sandbox.client("ec2")
    with acting_as(iam_user("admin-eve")):
        ec2.disable_image_block_public_access()

    sandbox.run()

    assert ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"] == "block-new-sharing"
    [alert] = sandbox.alerts()
    assert alert.message["type"] == "block-public-access-disabled" and alert.message["severity"] == "critical"


def test_foreign_ami_is_ignored_when_event_names_an_ami_of_another_account(sandbox, monkeypatch):
    monkeypatch.setenv("MOTO_ACCOUNT_ID", FOREIGN_ACCOUNT)  # the AMI is made in (and owned by) another account
    foreign = sandbox.internal_client("ec2")
    instance = foreign.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image_id = foreign.create_image(InstanceId=instance, Name="theirs")["ImageId"]
    monkeypatch.setenv("MOTO_ACCOUNT_ID", sandbox.account)

    delivery = sandbox.invoke("public_guard", _modify_event(image_id, account=FOREIGN_ACCOUNT)).result

    assert delivery["reason"] in {"not-owned", "resource-gone"}
    assert sandbox.alerts() == []


FOREIGN_ACCOUNT = "210987654321"


def _modify_event(image_id, account):
    return {
        "version": "0",
        "id": "e1",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": account,
        "time": "2026-11-26T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "ModifyImageAttribute",
            "awsRegion": "us-east-1",
            "eventTime": "2026-11-26T10:00:00Z",
            "eventID": "e1",
            "recipientAccountId": account,
            "requestParameters": {
                "imageId": image_id,
                "attributeType": "launchPermission",
                "launchPermission": {"add": {"items": [{"group": "all"}]}},
            },
        },
    }


@pytest.mark.parametrize(
    "event", [{}, [], "text", {"detail-type": "AWS API Call via CloudTrail"}, {"detail": "x", "source": 1}]
)
def test_malformed_event_is_dropped_with_a_reason_when_shape_is_wrong(sandbox, event):
    delivery = sandbox.invoke("public_guard", event)

    assert delivery.error is None
    assert delivery.result["status"] == "dropped" and delivery.result["reason"] == "malformed-event"
    assert '"EventsDropped"' in delivery.output and '"reason":"malformed-event"' in delivery.output


def test_exposure_time_is_logged_and_emitted_as_a_metric_when_revoked(sandbox):
    image = bake_image(sandbox)
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}]}
        )

    deliveries = sandbox.run()

    acted = next(d for d in deliveries if d.result and d.result["status"] == "acted")
    metrics = [json.loads(line) for line in acted.output.splitlines() if line.startswith('{"_aws"')]
    assert any("ExposureSeconds" in m for m in metrics)


def test_throttling_is_retried_and_then_raised_when_it_persists(sandbox, monkeypatch):
    # botocore's back-off and adaptive rate limiting wait in real time; neither is the behaviour under test
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    monkeypatch.setattr("botocore.retries.bucket.TokenBucket.acquire", lambda self, amount=1, block=True: True)
    image = bake_image(sandbox)
    failures = {"left": 2}

    def throttle(**kwargs):
        if failures["left"] > 0:
            failures["left"] -= 1
            from botocore.awsrequest import AWSResponse

            body = (
                b"<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
                b"<Message>slow down</Message></Error></Errors></Response>"
            )
            return AWSResponse("https://ec2", 503, {}, _Raw(body))
        return None

    import boto3

    boto3.DEFAULT_SESSION.events.register_first("before-send.ec2.DescribeImages", throttle)
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}]}
        )
    deliveries = sandbox.run()
    assert launch_permissions(sandbox, image["ImageId"]) == []  # two throttles, then botocore's retry got through
    assert not sandbox.dead_letters

    failures["left"] = 10_000
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}]}
        )
    deliveries = sandbox.run()
    failed = [d for d in deliveries if d.error]
    assert failed and "RequestLimitExceeded" in failed[0].error
    assert sandbox.dead_letters == failed  # Lambda retried, then the failure destination kept the event


class _Raw:
    def __init__(self, body):
        self._body = body

    def stream(self, **_):
        yield self._body

    def read(self, *_):
        return self._body


def test_transient_error_is_raised_not_swallowed_when_ec2_fails(sandbox, monkeypatch):
    from amiguard.services.public_guard import PublicGuard

    class FailingImages:
        region = "us-east-1"

        def owned_image(self, image_id):
            raise ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "DescribeImages")

    guard = PublicGuard(
        settings=__import__("amiguard.models.settings", fromlist=["x"]).load_settings(),
        images=lambda region: FailingImages(),
        alerts=None,
    )
    with pytest.raises(ClientError):
        guard.handle(_modify_event("ami-0123456789abcdef0", "123456789012"))


def test_function_fails_at_start_up_naming_the_variable_when_settings_are_bad(sandbox):
    image = bake_image(sandbox)
    sandbox.run()  # the image's own events (other functions, which refuse a bad setting too) settle first
    sandbox.reconfigure(TrustedPrincipals="12345678901")
    with acting_as(iam_user("dev-bob")):
        sandbox.client("ec2").modify_image_attribute(
            ImageId=image["ImageId"], LaunchPermission={"Add": [{"Group": "all"}]}
        )

    deliveries = sandbox.run()

    [failed] = [d for d in deliveries if d.error]
    assert "AMIGUARD_TRUSTED_PRINCIPALS" in failed.error
    assert sandbox.dead_letters == [failed]  # nothing lost: the event waits in the failure queue
