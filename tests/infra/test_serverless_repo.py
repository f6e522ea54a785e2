"""The stack can be published to the Serverless Application Repository: its metadata and licence."""

from __future__ import annotations

from typing import Any

import pytest

from .sam_tools import REPO_ROOT

pytestmark = pytest.mark.infra


def test_template_carries_serverless_repo_metadata_when_published(template: dict[str, Any]) -> None:
    application = template["Metadata"]["AWS::ServerlessRepo::Application"]

    for key in ("Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "SemanticVersion"):
        assert application.get(key), f"AWS::ServerlessRepo::Application lacks {key}"
    assert application["SpdxLicenseId"] == "Apache-2.0"
    assert (REPO_ROOT / application["LicenseUrl"]).is_file() and (REPO_ROOT / application["ReadmeUrl"]).is_file()
    assert "Apache License" in (REPO_ROOT / application["LicenseUrl"]).read_text(encoding="utf-8")[:200]


def test_semantic_version_is_the_packages_version_when_published(template: dict[str, Any]) -> None:
    import amiguard

    assert template["Metadata"]["AWS::ServerlessRepo::Application"]["SemanticVersion"] == amiguard.__version__
