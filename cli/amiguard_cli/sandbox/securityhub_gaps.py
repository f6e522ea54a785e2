"""What moto's Security Hub lacks and the sandbox needs, with the real API's shapes.

- BatchImportFindings where Security Hub is not enabled: moto imports anyway; Security Hub answers
  ``InvalidAccessException`` ("Account ... is not subscribed to AWS Security Hub").
- BatchImportFindings of a finding Security Hub holds: moto replaces it whole; Security Hub keeps what
  import cannot change once a finding exists (``Workflow``, ``Note``, ``UserDefinedFields``,
  ``VerificationState``).
- BatchUpdateFindings: not in moto. Here it sets ``Workflow`` and ``Note`` of the findings moto holds and
  answers ``ProcessedFindings`` / ``UnprocessedFindings`` (``FindingNotFound``) as Security Hub does.

The adapter's own tests use botocore's ``Stubber`` for both; this module keeps the demo and the sandbox tests
running end to end. Answered in a ``before-call`` hook of the handlers' session, after the IAM check.
"""

from __future__ import annotations

from typing import Any

from moto.securityhub.models import SecurityHubBackend, securityhub_backends

from amiguard_cli.sandbox.moto_gaps import CannedHttp, canned

KEPT_ON_IMPORT = ("Workflow", "Note", "UserDefinedFields", "VerificationState")
_original_import = SecurityHubBackend.batch_import_findings


def _batch_import_findings(self: SecurityHubBackend, findings: list[dict[str, Any]]) -> Any:
    held = {finding.id: finding for finding in self.findings}
    kept = {
        found["Id"]: {key: held[found["Id"]].data[key] for key in KEPT_ON_IMPORT if key in held[found["Id"]].data}
        for found in findings
        if found.get("Id") in held
    }
    answer = _original_import(self, findings)
    for finding in self.findings:
        finding.data.update(kept.get(finding.id, {}))
    return answer


def patch_moto_securityhub() -> None:
    """Install the import semantics above (idempotent)."""
    SecurityHubBackend.batch_import_findings = _batch_import_findings  # type: ignore[method-assign]


def _backend(account: str, region: str) -> Any:
    return securityhub_backends[account][region]


def _where(params: dict[str, Any], context: dict[str, Any]) -> tuple[str, str]:
    region = str(context.get("client_region") or "")
    for finding in params.get("Findings", []) or params.get("FindingIdentifiers", []):
        parts = str(finding.get("ProductArn", "")).split(":")
        if len(parts) > 4:
            return parts[4], parts[3] or region
    return "", region


def _refused(code: str, message: str, status: int) -> tuple[CannedHttp, dict[str, Any]]:
    return canned({"Error": {"Code": code, "Message": message}}, status)


def answer(model: Any, context: dict[str, Any], **_: Any) -> Any:
    """``before-call.securityhub.*``: answer what moto gets wrong; None lets moto answer.

    The call's parameters are those the sandbox noted at ``provide-client-params`` (``before-call`` sees the
    serialized request).
    """
    params = context.get("amiguard_iam_params")
    if model.name not in {"BatchImportFindings", "BatchUpdateFindings"} or params is None:
        return None
    account, region = _where(params, context)
    if not account:
        return None
    backend = _backend(account, region)
    if not backend.enabled:
        message = f"Account {account} is not subscribed to AWS Security Hub"
        return _refused("InvalidAccessException", message, 401)
    if model.name == "BatchImportFindings":
        return None
    processed, unprocessed = [], []
    held = {finding.id: finding for finding in backend.findings}
    for identifier in params.get("FindingIdentifiers", []):
        finding = held.get(identifier["Id"])
        if finding is None:
            unprocessed.append(
                {"FindingIdentifier": identifier, "ErrorCode": "FindingNotFound", "ErrorMessage": "Finding not found"}
            )
            continue
        if "Workflow" in params:
            finding.data["Workflow"] = dict(params["Workflow"])
        if "Note" in params:
            finding.data["Note"] = dict(params["Note"]) | {"UpdatedAt": finding.data.get("UpdatedAt", "")}
        processed.append(identifier)
    return canned({"ProcessedFindings": processed, "UnprocessedFindings": unprocessed})
