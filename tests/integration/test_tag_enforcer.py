"""tag_enforcer under the sandbox: calls recorded as CloudTrail, routed by template.yaml's rules to the real
handler; assertions on the AMI's and snapshots' tags afterwards and on the alerts an SQS subscriber gets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amiguard.models.events import wrap_cloudtrail_record
from amiguard.policy.tagging import (
    CREATED_BY,
    SOURCE_IMAGE,
    SOURCE_INSTANCE,
    SOURCE_REGION,
    VIOLATION,
    VIOLATION_SINCE,
)
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, assumed_role, cloudtrail_record, iam_user

BOB = "arn:aws:iam::123456789012:user/dev-bob"
REQUIRED = "Owner,CostCenter"
OWNERSHIP = {"Owner": "bob@example.com", "CostCenter": "cc-1234"}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(parameters={"Mode": "enforce", "RequiredTags": REQUIRED}) as sb:
        yield sb


# --- helpers ------------------------------------------------------------------------------------------------


def load_sample(name: str) -> dict[str, Any]:
    path = Path(__file__).resolve().parents[1] / "fixtures" / "cloudtrail-samples" / name
    document: dict[str, Any] = json.loads(path.read_text())
    return document if "detail-type" in document else wrap_cloudtrail_record(document)


def api_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def launch(sb: Sandbox, tags: dict[str, str] | None = None, region: str | None = None) -> str:
    spec = [{"ResourceType": "instance", "Tags": api_tags(tags)}] if tags else []
    with acting_as(iam_user("dev-bob")):
        reservation = sb.client("ec2", region).run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=spec
        )
    return str(reservation["Instances"][0]["InstanceId"])


def bake(sb: Sandbox, instance: str, *, tags: dict[str, str] | None = None, region: str | None = None) -> str:
    spec = [{"ResourceType": "image", "Tags": api_tags(tags)}] if tags else []
    with acting_as(iam_user("dev-bob")):
        image = sb.client("ec2", region).create_image(InstanceId=instance, Name="web-2026-11", TagSpecifications=spec)
    return str(image["ImageId"])


def image_of(sb: Sandbox, image_id: str, region: str | None = None) -> dict[str, Any]:
    image: dict[str, Any] = sb.client("ec2", region).describe_images(ImageIds=[image_id])["Images"][0]
    return image


def tags_of(sb: Sandbox, image_id: str, region: str | None = None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in image_of(sb, image_id, region).get("Tags", [])}


def snapshot_tags_of(sb: Sandbox, image_id: str, region: str | None = None) -> list[dict[str, str]]:
    ec2 = sb.client("ec2", region)
    ids = [m["Ebs"]["SnapshotId"] for m in image_of(sb, image_id, region)["BlockDeviceMappings"] if "Ebs" in m]
    assert ids, "the AMI has no EBS snapshot"
    snapshots = ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"]
    return [{tag["Key"]: tag["Value"] for tag in snapshot.get("Tags", [])} for snapshot in snapshots]


def results(deliveries: list[Any]) -> list[dict[str, Any]]:
    """What tag_enforcer made of each event, leaving out its own tag writes coming back (always dropped)."""
    return [
        d.result
        for d in deliveries
        if d.function == "tag_enforcer" and (d.result or {}).get("reason") != "amiguard-own-action"
    ]


def tag_as(sb: Sandbox, who: str, resources: list[str], tags: dict[str, str]) -> None:
    with acting_as(iam_user(who)):
        sb.client("ec2").create_tags(Resources=resources, Tags=api_tags(tags))


# --- a new AMI ------------------------------------------------------------------------------------------------


def test_untagged_ami_is_flagged_and_auto_tagged_when_baked_from_an_untagged_instance(sandbox):
    instance = launch(sandbox)
    image_id = bake(sandbox, instance)

    sandbox.run()

    tags = tags_of(sandbox, image_id)
    assert tags[CREATED_BY] == BOB
    assert tags[SOURCE_INSTANCE] == instance
    assert tags[VIOLATION] == "missing:Owner,CostCenter"
    assert tags[VIOLATION_SINCE].endswith("Z")
    [alert] = sandbox.alerts()
    assert alert.message["type"] == "missing-tags" and alert.message["severity"] == "medium"
    assert alert.message["actor"] == BOB and alert.message["action"] == "tagged"
    assert alert.message["image_id"] == image_id and alert.message["image_name"] == "web-2026-11"
    assert alert.message["evidence"]["missing"] == ["Owner", "CostCenter"]
    assert alert.attributes["type"] == "missing-tags"


def test_required_tags_are_inherited_from_the_instance_when_the_ami_lacks_them(sandbox):
    instance = launch(sandbox, OWNERSHIP | {"Name": "web-1"})
    image_id = bake(sandbox, instance)

    delivered = sandbox.run()

    tags = tags_of(sandbox, image_id)
    assert {key: tags[key] for key in OWNERSHIP} == OWNERSHIP
    assert "Name" not in tags and VIOLATION not in tags
    assert sandbox.alerts() == []
    assert results(delivered)[0]["status"] == "clean"


def test_required_tags_are_copied_to_the_backing_snapshots_when_the_ami_is_new(sandbox):
    image_id = bake(sandbox, launch(sandbox), tags=OWNERSHIP)
    create_image = next(r for r in sandbox.recorder.records if r["eventName"] == "CreateImage")

    sandbox.invoke("tag_enforcer", wrap_cloudtrail_record(create_image))  # the CreateImage event alone

    for snapshot in snapshot_tags_of(sandbox, image_id):
        assert snapshot == OWNERSHIP  # the required tags, not amiguard's own
    assert sandbox.alerts() == []


def test_invalid_value_is_flagged_when_a_rule_rejects_it(sandbox):
    sandbox.reconfigure(RequiredTags='{"Owner": {}, "Environment": {"allowed": ["dev", "prod"]}}')
    image_id = bake(sandbox, launch(sandbox), tags={"Owner": "bob", "Environment": "stagíng 🚧"})

    sandbox.run()

    assert tags_of(sandbox, image_id)[VIOLATION] == "invalid:Environment"
    [alert] = sandbox.alerts()
    assert alert.message["type"] == "invalid-tags"
    assert alert.message["evidence"]["invalid"] == {"Environment": "stagíng 🚧"}


def test_created_by_names_issuer_role_and_session_when_made_through_sso(sandbox):
    sso = assumed_role(
        "AWSReservedSSO_AdministratorAccess_0123456789abcdef",
        "ana@example.com",
        path="/aws-reserved/sso.amazonaws.com/",
    )
    instance = launch(sandbox)
    with acting_as(sso):
        image_id = sandbox.client("ec2").create_image(InstanceId=instance, Name="sso-made")["ImageId"]

    sandbox.run()

    assert tags_of(sandbox, image_id)[CREATED_BY] == (
        "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/"
        "AWSReservedSSO_AdministratorAccess_0123456789abcdef/ana@example.com"
    )


def test_user_supplied_amiguard_tags_are_replaced_when_they_contradict_the_event(sandbox):
    image_id = bake(sandbox, launch(sandbox), tags=OWNERSHIP | {CREATED_BY: "someone-else"})

    sandbox.run()

    assert tags_of(sandbox, image_id)[CREATED_BY] == BOB


def test_registered_ami_gets_created_by_and_a_violation_when_registered_without_tags(sandbox):
    with acting_as(iam_user("dev-bob")):
        image_id = sandbox.client("ec2").register_image(Name="from-snapshots", RootDeviceName="/dev/xvda")["ImageId"]

    sandbox.run()

    tags = tags_of(sandbox, image_id)
    assert tags[CREATED_BY] == BOB and tags[VIOLATION] == "missing:Owner,CostCenter"


# --- CopyImage ------------------------------------------------------------------------------------------------


@pytest.fixture
def two_regions() -> Iterator[Sandbox]:
    parameters = {"Mode": "enforce", "RequiredTags": REQUIRED}
    with Sandbox(stack_regions=("us-east-1", "us-west-2"), parameters=parameters) as sb:
        yield sb


def test_copy_inherits_required_tags_from_the_source_ami_in_its_region_when_copied(two_regions):
    sb = two_regions
    source = bake(sb, launch(sb, region="us-west-2"), tags=OWNERSHIP | {"Name": "x"}, region="us-west-2")
    sb.run()
    with acting_as(iam_user("dev-bob")):
        copy = sb.client("ec2", "us-east-1").copy_image(SourceImageId=source, SourceRegion="us-west-2", Name="copy")

    sb.run()

    tags = tags_of(sb, copy["ImageId"], "us-east-1")
    assert tags == OWNERSHIP | {CREATED_BY: BOB, SOURCE_IMAGE: source, SOURCE_REGION: "us-west-2"}
    assert sb.alerts() == []


def test_copy_is_flagged_with_a_clear_note_when_its_source_is_gone(two_regions):
    sb = two_regions
    source = bake(sb, launch(sb, region="us-west-2"), tags=OWNERSHIP, region="us-west-2")
    sb.run()
    with acting_as(iam_user("dev-bob")):
        copy = sb.client("ec2", "us-east-1").copy_image(SourceImageId=source, SourceRegion="us-west-2", Name="copy")
        sb.client("ec2", "us-west-2").deregister_image(ImageId=source)

    delivered = sb.run()

    assert tags_of(sb, copy["ImageId"], "us-east-1")[VIOLATION] == "missing:Owner,CostCenter"
    [alert] = sb.alerts()
    assert alert.message["evidence"]["notes"] == [f"source image us-west-2/{source} is gone: nothing inherited"]
    assert not sb.dead_letters and results(delivered)


# --- the owner fixes it, or breaks it ---------------------------------------------------------------------------


def test_violation_is_resolved_when_the_owner_adds_the_missing_tags(sandbox):
    image_id = bake(sandbox, launch(sandbox))
    sandbox.run()
    sandbox.alerts()

    tag_as(sandbox, "dev-bob", [image_id], OWNERSHIP)
    sandbox.run()

    tags = tags_of(sandbox, image_id)
    assert VIOLATION not in tags and VIOLATION_SINCE not in tags
    assert tags[CREATED_BY] == BOB
    [alert] = sandbox.alerts()
    assert alert.message["type"] == "resolved" and alert.message["severity"] == "info"
    assert alert.message["evidence"]["previous_violation"] == "missing:Owner,CostCenter"
    assert all(snapshot == OWNERSHIP for snapshot in snapshot_tags_of(sandbox, image_id))


def test_partial_fix_updates_the_violation_and_keeps_its_start_when_one_tag_is_still_missing(sandbox):
    image_id = bake(sandbox, launch(sandbox))
    sandbox.run()
    since = tags_of(sandbox, image_id)[VIOLATION_SINCE]
    sandbox.alerts()

    tag_as(sandbox, "dev-bob", [image_id], {"Owner": "bob@example.com"})
    sandbox.run()

    tags = tags_of(sandbox, image_id)
    assert tags[VIOLATION] == "missing:CostCenter" and tags[VIOLATION_SINCE] == since
    [alert] = sandbox.alerts()
    assert alert.message["evidence"]["previous_violation"] == "missing:Owner,CostCenter"


def test_deleting_a_required_tag_raises_a_new_violation_when_the_ami_was_compliant(sandbox):
    image_id = bake(sandbox, launch(sandbox), tags=OWNERSHIP)
    sandbox.run()

    with acting_as(iam_user("dev-mallory")):
        sandbox.client("ec2").delete_tags(Resources=[image_id], Tags=[{"Key": "CostCenter"}])
    sandbox.run()

    assert tags_of(sandbox, image_id)[VIOLATION] == "missing:CostCenter"
    [alert] = sandbox.alerts()
    assert alert.message["type"] == "missing-tags"
    assert alert.message["actor"] == "arn:aws:iam::123456789012:user/dev-mallory"


def test_tags_irrelevant_to_the_policy_are_dropped_without_a_call_when_only_they_change(sandbox):
    image_id = bake(sandbox, launch(sandbox), tags=OWNERSHIP)
    sandbox.run()

    tag_as(sandbox, "dev-bob", [image_id], {"Name": "nice name"})
    [result] = results(sandbox.run())

    assert result["status"] == "dropped" and result["reason"] == "irrelevant-tags"


def test_only_the_amis_are_evaluated_when_create_tags_names_a_thousand_mixed_resources(sandbox):
    images = [bake(sandbox, launch(sandbox)) for _ in range(3)]
    sandbox.run()
    sandbox.alerts()
    others = [f"{prefix}-{index:017x}" for index in range(333) for prefix in ("vol", "i", "snap")][:997]
    resources = others[:500] + images + others[500:]
    assert len(resources) == 1000

    # A real call like this names existing volumes and instances; moto would refuse made-up ones, so the owner's
    # tags land on the AMIs directly and the CloudTrail record AWS writes for the whole call goes on the bus.
    sandbox.internal_client("ec2").create_tags(Resources=images, Tags=api_tags(OWNERSHIP))
    params = {"Resources": resources, "Tags": api_tags(OWNERSHIP)}
    record = cloudtrail_record("CreateTags", params, {}, region="us-east-1", identity=iam_user("dev-bob"))
    sandbox.put_event(wrap_cloudtrail_record(record))
    [result] = results(sandbox.run())

    assert result["status"] == "acted" and "3 AMI(s) evaluated of 1000 resources" in result["detail"]
    assert all(VIOLATION not in tags_of(sandbox, image) for image in images)
    assert sorted(alert.message["image_id"] for alert in sandbox.alerts()) == sorted(images)


def test_create_tags_without_ami_is_dropped_when_it_names_only_other_resources(sandbox):
    volume = sandbox.internal_client("ec2").create_volume(Size=8, AvailabilityZone="us-east-1a")["VolumeId"]
    tag_as(sandbox, "dev-bob", [volume, launch(sandbox)], {"Owner": "x"})

    [result] = results(sandbox.run())

    assert result["reason"] == "no-image-resources"


# --- loops, duplicates, audit ----------------------------------------------------------------------------------


def test_amiguard_own_tag_writes_trigger_nothing_when_recorded(sandbox):
    image_id = bake(sandbox, launch(sandbox))

    delivered = sandbox.run()

    own = [d.result for d in delivered if d.result and d.result["reason"] == "amiguard-own-action"]
    assert own, "amiguard's CreateTags reached tag_enforcer and must be dropped there"
    assert all(r["status"] == "dropped" for r in own)
    assert len(sandbox.alerts()) == 1
    assert tags_of(sandbox, image_id)[VIOLATION]


def test_duplicate_event_changes_nothing_and_alerts_nothing_when_delivered_again(sandbox):
    bake(sandbox, launch(sandbox))
    record = next(r for r in sandbox.recorder.records if r["eventName"] == "CreateImage")
    sandbox.run()
    sandbox.alerts()

    sandbox.put_event(wrap_cloudtrail_record(record))
    [result] = results(sandbox.run())

    assert result["status"] == "clean"
    assert sandbox.alerts() == []


def test_nothing_is_written_and_findings_say_would_tag_when_in_audit_mode(sandbox):
    sandbox.reconfigure(Mode="audit")
    image_id = bake(sandbox, launch(sandbox))

    sandbox.run()

    assert tags_of(sandbox, image_id) == {}
    [alert] = sandbox.alerts()
    assert alert.message["action"] == "would-tag" and alert.message["type"] == "missing-tags"


def test_malformed_create_tags_is_dropped_with_a_reason_when_resources_set_is_missing(sandbox):
    record = {
        "eventVersion": "1.08",
        "userIdentity": iam_user("dev-bob"),
        "eventSource": "ec2.amazonaws.com",
        "eventName": "CreateTags",
        "awsRegion": "us-east-1",
        "requestParameters": {"tagSet": {"items": [{"key": "Owner", "value": "x"}]}},
        "responseElements": {"_return": True},
        "recipientAccountId": "123456789012",
    }

    delivery = sandbox.invoke("tag_enforcer", wrap_cloudtrail_record(record))

    assert delivery.error is None
    assert delivery.result["status"] == "dropped" and delivery.result["reason"] == "malformed-event"


# --- the recorded samples ------------------------------------------------------------------------------------

SAMPLES = {
    "cloudtrail-raw-createimage-console-panther.json": "resource-gone",
    "cloudtrail-raw-createimage-console-trimmed-amilineage.json": "resource-gone",
    "cloudtrail-raw-copyimage-console-trimmed-amilineage.json": "resource-gone",
    "cloudtrail-raw-createtags-resourcesset-c7n.json": "no-image-resources",
}


@pytest.mark.parametrize(("name", "reason"), sorted(SAMPLES.items()))
def test_recorded_sample_is_dropped_with_a_reason_when_replayed_verbatim(name, reason):
    event = load_sample(name)
    with Sandbox(stack_regions=(event["detail"]["awsRegion"],), parameters={"Mode": "enforce"}) as sb:
        sb.put_event(event)
        [result] = results(sb.run())
        assert result["status"] == "dropped" and result["reason"] == reason, result
        assert not sb.dead_letters


def test_panther_create_image_sample_is_acted_on_when_its_ids_name_real_resources():
    event = load_sample("cloudtrail-raw-createimage-console-panther.json")
    with Sandbox(parameters={"Mode": "enforce"}, account="123456789101") as sb:
        instance = launch(sb, OWNERSHIP)
        image_id = sb.internal_client("ec2").create_image(InstanceId=instance, Name="testimage")["ImageId"]
        event["detail"]["requestParameters"]["instanceId"] = instance
        event["detail"]["responseElements"]["imageId"] = image_id

        delivery = sb.invoke("tag_enforcer", event)

        assert delivery.result["status"] == "clean", delivery.result
        tags = tags_of(sb, image_id)
        assert tags[CREATED_BY] == "arn:aws:iam::123456789101:role/DevAdministrator/test_user"
        assert tags[SOURCE_INSTANCE] == instance and tags["Owner"] == OWNERSHIP["Owner"]


def test_trimmed_create_image_sample_is_flagged_without_created_by_when_its_ids_name_real_resources():
    event = load_sample("cloudtrail-raw-createimage-console-trimmed-amilineage.json")
    with Sandbox(stack_regions=("us-west-2",), parameters={"Mode": "enforce"}) as sb:
        instance = launch(sb, region="us-west-2")
        image_id = sb.internal_client("ec2", "us-west-2").create_image(InstanceId=instance, Name="trimmed")["ImageId"]
        event["detail"]["requestParameters"]["instanceId"] = instance
        event["detail"]["responseElements"]["imageId"] = image_id

        delivery = sb.invoke("tag_enforcer", event)

        assert delivery.result["status"] == "acted"
        tags = tags_of(sb, image_id, "us-west-2")
        assert CREATED_BY not in tags and tags[VIOLATION] == "missing:Owner,CostCenter"
        [finding] = delivery.result["findings"]
        assert finding["actor"] is None
        assert "the event names no principal" in finding["evidence"]["notes"][0]


def test_trimmed_copy_image_sample_inherits_from_its_source_when_its_ids_name_real_resources():
    event = load_sample("cloudtrail-raw-copyimage-console-trimmed-amilineage.json")
    with Sandbox(stack_regions=("us-west-2",), parameters={"Mode": "enforce"}) as sb:
        ec2 = sb.internal_client("ec2", "us-west-2")
        source = ec2.create_image(InstanceId=launch(sb, region="us-west-2"), Name="source")["ImageId"]
        ec2.create_tags(Resources=[source], Tags=api_tags(OWNERSHIP))
        copy = ec2.copy_image(SourceImageId=source, SourceRegion="us-west-2", Name="copy")["ImageId"]
        event["detail"]["requestParameters"]["sourceImageId"] = source
        event["detail"]["responseElements"]["imageId"] = copy

        delivery = sb.invoke("tag_enforcer", event)

        assert delivery.result["status"] == "clean", delivery.result
        tags = tags_of(sb, copy, "us-west-2")
        assert tags == OWNERSHIP | {SOURCE_IMAGE: source, SOURCE_REGION: "us-west-2"}


def test_c7n_create_tags_sample_re_evaluates_the_ami_when_an_ami_id_is_added():
    event = load_sample("cloudtrail-raw-createtags-resourcesset-c7n.json")
    with Sandbox(stack_regions=("us-west-2",), parameters={"Mode": "enforce"}) as sb:
        ec2 = sb.internal_client("ec2", "us-west-2")
        image_id = ec2.create_image(InstanceId=launch(sb, region="us-west-2"), Name="source")["ImageId"]
        ec2.create_tags(Resources=[image_id], Tags=[{"Key": "Env", "Value": "Production"}])
        event["detail"]["requestParameters"]["resourcesSet"]["items"].append({"resourceId": image_id})
        event["detail"]["requestParameters"]["tagSet"]["items"].append({"key": "Owner", "value": "x"})

        delivery = sb.invoke("tag_enforcer", event)

        assert delivery.result["status"] == "acted"
        assert tags_of(sb, image_id, "us-west-2")[VIOLATION] == "missing:Owner,CostCenter"


# --- "EC2 AMI State Change": available ---------------------------------------------------------------------


def state_change(image_id: str, state: str = "available") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "EC2 AMI State Change",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-11-26T10:04:12Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:ec2:us-east-1::image/{image_id}"],
        "detail": {"RequestId": "r", "ImageId": image_id, "State": state, "ErrorMessage": ""},
    }


def test_snapshots_get_the_ami_tags_they_lack_when_the_ami_becomes_available(sandbox):
    ec2 = sandbox.internal_client("ec2")
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image_id = ec2.create_image(InstanceId=instance, Name="snapshots-late")["ImageId"]
    ec2.create_tags(Resources=[image_id], Tags=api_tags(OWNERSHIP | {"Name": "x"}))

    first = sandbox.invoke("tag_enforcer", state_change(image_id))
    again = sandbox.invoke("tag_enforcer", state_change(image_id))

    assert first.result["reason"] == "snapshots-tagged" and first.result["detail"].startswith("1 snapshot(s)")
    assert snapshot_tags_of(sandbox, image_id) == [OWNERSHIP]
    assert again.result["detail"].startswith("0 snapshot(s)")


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (state_change("ami-0123456789abcdef0", "failed"), "unhandled-event"),
        (load_sample("docexample-eventbridge-ec2-ami-state-change-available.json"), "malformed-event"),
        (state_change("ami-0123456789abcdef0"), "resource-gone"),
    ],
    ids=["failed-state", "aws-doc-example-placeholder-id", "deregistered-since"],
)
def test_state_change_is_dropped_with_a_reason_when_there_is_nothing_to_tag(sandbox, event, reason):
    delivery = sandbox.invoke("tag_enforcer", event)

    assert delivery.error is None and delivery.result["reason"] == reason


def test_copy_gets_its_own_violation_and_grace_period_when_it_carries_the_source_violation_tags(two_regions):
    sb = two_regions
    internal = sb.internal_client("ec2", "us-west-2")
    instance = internal.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    source = internal.create_image(InstanceId=instance, Name="old-violator")["ImageId"]
    old = {VIOLATION: "missing:Owner,CostCenter", VIOLATION_SINCE: "2026-01-01T00:00:00Z"}
    internal.create_tags(Resources=[source], Tags=api_tags(old))
    with acting_as(iam_user("dev-bob")):
        copy = sb.client("ec2", "us-east-1").copy_image(SourceImageId=source, SourceRegion="us-west-2", Name="copy")
    # what CopyImage with CopyImageTags=true does (moto does not copy tags)
    sb.internal_client("ec2", "us-east-1").create_tags(Resources=[copy["ImageId"]], Tags=api_tags(old))

    sb.run()

    tags = tags_of(sb, copy["ImageId"], "us-east-1")
    assert tags[VIOLATION] == "missing:Owner,CostCenter" and tags[VIOLATION_SINCE] > "2026-11-01"
    [alert] = sb.alerts()
    assert alert.message["image_id"] == copy["ImageId"] and alert.message["type"] == "missing-tags"
