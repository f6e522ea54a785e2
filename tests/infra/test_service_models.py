"""The trimmed botocore models the functions load (amiguard/aws/service_models): generated from the pinned
botocore, complete for every call the adapters make, and what the template and the sandbox point botocore at."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore import xform_name
from botocore.regions import EndpointResolver

from amiguard.aws.service_models import ENDPOINT_SERVICES, OPERATIONS
from amiguard_cli.sandbox.account import Sandbox, lambda_botocore_session
from amiguard_cli.sandbox.cfn import deployed_data_path, load_template

from .sam_tools import REPO_ROOT, TEMPLATE, script

pytestmark = pytest.mark.infra

MODELS = REPO_ROOT / "layers" / "amiguard" / "amiguard" / "aws" / "service_models"
ADAPTERS = REPO_ROOT / "layers" / "amiguard" / "amiguard" / "aws"  # the only code calling boto3


def _called_in_adapters() -> set[str]:
    """Method names the adapters call, and the operations they paginate."""
    text = "\n".join(path.read_text() for path in ADAPTERS.rglob("*.py"))
    return set(re.findall(r"\.([a-z_][a-z0-9_]*)\(", text)) | set(re.findall(r'get_paginator\(\s*"([a-z_]+)"', text))


def test_models_match_the_pinned_botocore_when_committed() -> None:
    generator = script("gen_service_models")

    assert generator.committed_models() == generator.trimmed_models(), (
        "amiguard/aws/service_models differs from what botocore would load: run `make service-models` and commit"
    )


@pytest.mark.parametrize("service", sorted(OPERATIONS))
def test_every_operation_an_adapter_calls_is_in_the_trimmed_model_when_scanned(service: str) -> None:
    full = botocore.session.get_session().get_service_model(service)
    called = {name for name in full.operation_names if xform_name(name) in _called_in_adapters()}

    assert called - set(OPERATIONS[service]) == set(), "add them to OPERATIONS, then `make service-models`"


@pytest.mark.parametrize("service", sorted(OPERATIONS))
def test_client_has_exactly_the_listed_operations_when_aws_data_path_is_the_deployed_one(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_path = deployed_data_path(load_template(TEMPLATE), REPO_ROOT)
    assert data_path is not None
    monkeypatch.setenv("AWS_DATA_PATH", data_path)  # what Lambda's environment holds
    session = boto3.Session(region_name="us-east-1")

    client = session.client(service, aws_access_key_id="x", aws_secret_access_key="x")  # type: ignore[call-overload]

    assert sorted(client.meta.service_model.operation_names) == sorted(OPERATIONS[service])


def test_other_services_keep_botocores_full_model_when_the_data_path_is_set() -> None:
    data_path = deployed_data_path(load_template(TEMPLATE), REPO_ROOT)
    session = boto3.Session(botocore_session=lambda_botocore_session(data_path), region_name="us-east-1")

    secrets = session.client("secretsmanager", aws_access_key_id="x", aws_secret_access_key="x")

    assert "GetSecretValue" in secrets.meta.service_model.operation_names  # the notifier's webhook lookup


def test_template_points_botocore_at_the_models_the_layer_ships_when_deployed() -> None:
    data_path = deployed_data_path(load_template(TEMPLATE), REPO_ROOT)

    assert data_path is not None, "Globals set no AWS_DATA_PATH: every function loads botocore's full models"
    assert Path(data_path) == MODELS


def test_sandbox_handlers_use_the_trimmed_models_when_the_scenario_uses_the_full_ones() -> None:
    with Sandbox() as sandbox:
        handlers = boto3.client("ec2")  # what a handler's ClientFactory makes: the default session
        people = sandbox.client("ec2")

        assert sorted(handlers.meta.service_model.operation_names) == sorted(OPERATIONS["ec2"])
        assert "RunInstances" in people.meta.service_model.operation_names


def test_every_kept_service_resolves_as_with_botocores_full_endpoint_data_when_trimmed() -> None:
    full_data = botocore.session.get_session().get_component("data_loader").load_data("endpoints")
    full = EndpointResolver(full_data)
    trimmed = EndpointResolver(json.loads((MODELS / "endpoints.json").read_text()))
    regions = [region for partition in full_data["partitions"] for region in partition["regions"]]

    for service in ENDPOINT_SERVICES:
        for region in regions:
            assert trimmed.construct_endpoint(service, region) == full.construct_endpoint(service, region), (
                f"{service} in {region}"
            )
