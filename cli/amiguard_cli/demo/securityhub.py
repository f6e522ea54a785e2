"""Act: where security teams look. With SecurityHub=enabled, a public share revoked in seconds shows up in
Security Hub as an ASFF finding, already closed; and a reviewed exception (parameter Exceptions, never a tag the
owner writes) keeps a lab AMI's missing tags out of the alerts: recorded in the ledger as excepted, suppressed in
Security Hub with the exception's reason and expiry."""

from __future__ import annotations

import json
from typing import Any

from amiguard.aws.ledger import DynamoLedger
from amiguard_cli.demo.timeline import Timeline
from amiguard_cli.sandbox.account import Sandbox
from amiguard_cli.sandbox.cloudtrail import acting_as, iam_user

DAVE = iam_user("dev-dave")
LAB_EXCEPTION = {
    "name": "research-lab",
    "tag": "Team=research",
    "types": ["missing-tags"],
    "reason": "lab AMIs carry no cost centre; reviewed by secops (CHG-2041)",
    "expires": "2099-12-31",
}


def _bake(sandbox: Sandbox, name: str, tags: list[dict[str, str]]) -> str:
    ec2 = sandbox.client("ec2")
    with acting_as(DAVE):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        image_id: str = ec2.create_image(
            InstanceId=instance, Name=name, TagSpecifications=[{"ResourceType": "image", "Tags": tags}]
        )["ImageId"]
    return image_id


def _as_received(finding: dict[str, Any]) -> str:
    """The fields of an ASFF finding a security engineer reads first, as Security Hub holds them."""
    shown = {
        key: finding[key]
        for key in ("Id", "GeneratorId", "Title", "Severity", "Types", "Compliance", "Workflow", "Resources")
    }
    shown["Severity"] = finding["Severity"]["Label"]
    shown["Resources"] = [{"Type": r["Type"], "Id": r["Id"]} for r in finding["Resources"]]
    shown["Remediation"] = finding["Remediation"]["Recommendation"]["Text"]
    if "Note" in finding:
        shown["Note"] = finding["Note"]["Text"]
    return json.dumps(shown, indent=2, ensure_ascii=False)


def act(sandbox: Sandbox, timeline: Timeline) -> None:
    timeline.act("Security Hub, and a reviewed exception")
    sandbox.enable_security_hub()
    sandbox.reconfigure(SecurityHub="enabled", Exceptions=json.dumps([LAB_EXCEPTION]))
    timeline.step("secops", "deploys with SecurityHub=enabled and one exception: Team=research AMIs may lack tags")

    owned = [{"Key": "Owner", "Value": "dave@example.com"}, {"Key": "CostCenter", "Value": "cc-web"}]
    image_id = _bake(sandbox, "web-frontend-2026-12", owned)
    timeline.settle()
    with acting_as(DAVE):
        sandbox.client("ec2").modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
        timeline.step("dave", f"makes {image_id} public")
    timeline.settle()
    for found in sandbox.security_hub_findings():
        if found["GeneratorId"] == "amiguard/public-share":
            timeline.step("Security Hub", "receives (BatchImportFindings, then BatchUpdateFindings: resolved)")
            timeline.console.print(_as_received(found), markup=False, highlight=False)

    lab = _bake(
        sandbox,
        "genomics-lab-2026-12",
        [{"Key": "Owner", "Value": "dave@example.com"}, {"Key": "Team", "Value": "research"}],
    )
    timeline.step("dave", f"bakes {lab} (genomics-lab-2026-12), Team=research, no CostCenter")
    timeline.settle()
    ledger = DynamoLedger(sandbox.internal_client("dynamodb"), sandbox.ledger_table)
    for entry in ledger.findings_for_image(sandbox.home, lab):
        if entry.finding.type.value == "missing-tags":
            timeline.step("ledger", f"{lab} missing-tags: {entry.state.value} by {entry.excepted_by}, no alert sent")
    for found in sandbox.security_hub_findings():
        if found["GeneratorId"] == "amiguard/missing-tags" and lab in found["Id"]:
            timeline.step("Security Hub", f"{found['Id']}: workflow {found['Workflow']['Status']}")
    sandbox.reconfigure(SecurityHub="disabled", Exceptions="")
