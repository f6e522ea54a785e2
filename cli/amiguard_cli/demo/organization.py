"""Act (organization mode): a member account makes an AMI public in a region the central stack does not run in.

The member's forwarding rule sends the event to the central bus; the central public_guard assumes the
member's ``amiguard-public-guard`` role, revokes the share there, and alerts with the member's account id and
name. Played on an organization sandbox (``Sandbox(organization=True)``): the security account and two members.
"""

from __future__ import annotations

from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

MEMBER = "prod"
REGION = "ap-southeast-2"  # the central stack runs in us-east-1 only; the member forwards from here


def act(sandbox: Sandbox, timeline: Timeline) -> None:
    if sandbox.org is None:
        raise ValueError("the organization act needs Sandbox(organization=True)")
    member = sandbox.org.account(MEMBER)
    timeline.act(f"Organization: a member account, a region without the stack ({member.name} {member.id}, {REGION})")
    timeline.step(
        "org",
        f"security account {sandbox.account} runs amiguard in {sandbox.home} for organization {sandbox.org.id}; "
        f"members: {', '.join(f'{a.name} {a.id}' for a in sandbox.org.members)}",
    )
    ec2 = sandbox.client("ec2", REGION, account=member.id)
    person = iam_user("dev-dana", member.id)
    with acting_as(person):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        owned = [{"Key": "Owner", "Value": "dana@example.com"}, {"Key": "CostCenter", "Value": "cc-search"}]
        image_id = ec2.create_image(
            InstanceId=instance, Name="search-api-2026-12", TagSpecifications=[{"ResourceType": "image", "Tags": owned}]
        )["ImageId"]
        timeline.step("dev-dana", f"bakes {image_id} (search-api-2026-12) in {member.name}, {REGION}")
    timeline.settle()

    with acting_as(person):
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
        timeline.step("dev-dana", f"makes {image_id} public in {REGION}")
    timeline.settle()
    kept = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"]
    timeline.step("state", f"launch permissions of {image_id} in {member.name} {REGION} now: {kept}")
    revoked_by = [
        record["userIdentity"]
        for record in sandbox.recorder.records
        if record["eventName"] == "ModifyImageAttribute"
        and record["recipientAccountId"] == member.id
        and record["userIdentity"].get("type") == "AssumedRole"
    ]
    if revoked_by:
        context = revoked_by[-1]["sessionContext"]
        timeline.step(
            "cloudtrail",
            f"{member.name} recorded the revocation by {context['sessionIssuer']['arn']} "
            f"(sourceIdentity {context.get('sourceIdentity')})",
        )
