"""The trimmed botocore models the functions load (amiguard/aws/service_models): generated from the pinned
botocore, complete for every call the runtime makes (read from its syntax tree: tests/infra/botocore_calls.py),
resolving every client's endpoint as botocore's full data does, and what the template and the sandbox point
botocore at."""

from __future__ import annotations

import json
import os
import re
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import xform_name
from botocore.client import BaseClient
from botocore.config import Config
from botocore.regions import EndpointResolver

from amiguard.aws.service_models import ENDPOINT_SERVICES, OPERATIONS
from amiguard_cli.sandbox.account import Sandbox, lambda_botocore_session
from amiguard_cli.sandbox.cfn import deployed_data_path, load_template

from .botocore_calls import Call, Scan, scan, sources
from .sam_tools import REPO_ROOT, TEMPLATE, script

pytestmark = pytest.mark.infra

MODELS = REPO_ROOT / "layers" / "amiguard" / "amiguard" / "aws" / "service_models"
RUNTIME = (REPO_ROOT / "layers" / "amiguard" / "amiguard", REPO_ROOT / "functions")  # what Lambda runs
CLIENT_METHODS = frozenset(name for name in dir(BaseClient) if not name.startswith("_"))  # get_paginator, close...


def _client(session: botocore.session.Session, service: str, region: str = "us-east-1") -> Any:
    config = Config(parameter_validation=False, retries={"max_attempts": 0})
    return session.create_client(
        service, region_name=region, aws_access_key_id="x", aws_secret_access_key="x", config=config
    )


@cache
def _full_session() -> botocore.session.Session:
    assert "AWS_DATA_PATH" not in os.environ, "the tests compare with botocore's own data: unset AWS_DATA_PATH"
    return lambda_botocore_session(None)


@cache
def _operation_names(service: str) -> frozenset[str]:
    """Every method name of ``service``'s client on botocore's full model."""
    return frozenset(_client(_full_session(), service).meta.method_to_api_mapping)


@cache
def runtime_scan() -> Scan:
    watched = frozenset().union(*(_operation_names(service) for service in OPERATIONS))
    return scan(sources(*RUNTIME), watched, relative_to=REPO_ROOT)


def missing_from_models(calls: list[Call], data_path: str) -> list[str]:
    """The ``calls`` on trimmed services that a client loading ``data_path`` first could not make."""
    session = lambda_botocore_session(data_path)
    missing: list[str] = []
    for call in calls:
        if call.service not in OPERATIONS:
            continue
        client = _client(session, call.service)
        try:
            if call.kind == "paginator":
                client.get_paginator(call.name)
            elif call.kind == "waiter":
                client.get_waiter(call.name)
            elif call.name not in CLIENT_METHODS:
                getattr(client, call.name)
        except Exception as error:  # AttributeError, OperationNotPageableError, ValueError (no such waiter)
            missing.append(f"{call.site}: {call.service} {call.kind} {call.name} ({type(error).__name__})")
    return missing


def test_models_match_the_pinned_botocore_when_committed() -> None:
    generator = script("gen_service_models")

    assert generator.committed_models() == generator.trimmed_models(), (
        "amiguard/aws/service_models differs from what botocore would load: run `make service-models` and commit"
    )


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

    for service in (_full_session().get_service_model(name).endpoint_prefix for name in ENDPOINT_SERVICES):
        for region in regions:
            assert trimmed.construct_endpoint(service, region) == full.construct_endpoint(service, region), (
                f"{service} in {region}"
            )


def _deployed_data_path() -> str:
    data_path = deployed_data_path(load_template(TEMPLATE), REPO_ROOT)
    assert data_path is not None, "Globals set no AWS_DATA_PATH"
    return data_path


# --- every call the runtime makes is in the trimmed models ---------------------------------------------------


def test_every_operation_paginator_and_waiter_the_runtime_calls_is_in_the_trimmed_models_when_scanned() -> None:
    calls = runtime_scan().calls

    assert {call.service for call in calls} >= {"ec2", "sns", "dynamodb"}, "the scan no longer sees the adapters"
    assert missing_from_models(calls, _deployed_data_path()) == [], "add them to OPERATIONS: `make service-models`"


def test_every_method_the_runtime_calls_on_a_client_exists_in_botocore_when_scanned() -> None:
    unknown = [
        f"{call.site}: {call.service}.{call.name}"
        for call in runtime_scan().calls
        if call.kind == "method" and call.name not in _operation_names(call.service) | CLIENT_METHODS
    ]

    assert unknown == []


def test_operations_listed_are_exactly_those_the_runtime_calls_when_scanned() -> None:
    session = _full_session()
    called: dict[str, set[str]] = {service: set() for service in OPERATIONS}
    for call in runtime_scan().calls:
        if call.service not in called or (call.kind == "method" and call.name in CLIENT_METHODS):
            continue
        client = _client(session, call.service)
        if call.kind == "paginator":
            name = client.meta.method_to_api_mapping[call.name]  # a paginator is named after its operation
        elif call.kind == "waiter":
            name = client.get_waiter(call.name).config.operation
        else:
            name = client.meta.method_to_api_mapping[call.name]
        called[call.service].add(name)

    assert {service: sorted(names) for service, names in called.items()} == {
        service: sorted(operations) for service, operations in OPERATIONS.items()
    }, "OPERATIONS lists every operation the runtime calls, and only those (the trimmed models ship them)"


def test_every_client_call_in_the_runtime_has_a_known_receiver_when_scanned() -> None:
    found = runtime_scan()

    assert [f"{site}: {call}" for call, site in found.unresolved] == [], (
        "a call named like an operation on a receiver of unknown type: annotate it (EC2Client, a port, ...)"
    )
    assert [str(site) for site in found.dynamic] == [], (
        "name each client's service as a literal (or a ClientFactory method)"
    )
    assert [str(site) for site in found.resources] == [], "use clients: boto3 resources are not checked here"


def test_check_reports_the_call_when_its_operation_is_deleted_from_a_trimmed_model(tmp_path: Path) -> None:
    data_path = tmp_path / "service_models"
    shutil.copytree(MODELS, data_path)
    model_file = next(data_path.glob("ec2/*/service-2.json"))
    model = json.loads(model_file.read_text())
    del model["operations"]["DeregisterImage"], model["operations"]["DescribeImages"]
    model_file.write_text(json.dumps(model))

    missing = missing_from_models(runtime_scan().calls, str(data_path))

    assert any(line.endswith("ec2 method deregister_image (AttributeError)") for line in missing), missing
    assert any("ec2 paginator describe_images" in line for line in missing), missing


# --- every client resolves as with botocore's full data ------------------------------------------------------


class _Sent(Exception):
    """Raised from ``before-send``: the signed request botocore would send, never sent."""


def _signed_request(client: Any) -> tuple[str, str, str, str]:
    """(the client's region, the URL, the signing region and service) of one request ``client`` makes."""
    model = client.meta.service_model
    plain = [
        name
        for name in model.operation_names
        if (shape := model.operation_model(name).input_shape) is None or not shape.required_members
    ]
    # An operation whose endpoint does not depend on its input (operationContextParams read input the call
    # leaves out): the endpoint then depends on the region and the data alone.
    fixed = [name for name in model.operation_names if not model.operation_model(name).operation_context_parameters]
    operation = ([name for name in plain if name in fixed] or fixed or model.operation_names)[0]

    def capture(request: Any, **_: Any) -> None:
        authorization = request.headers["Authorization"]
        authorization = authorization.decode() if isinstance(authorization, bytes) else authorization
        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request", authorization)
        assert scope is not None, authorization
        raise _Sent(request.url, *scope.groups())

    client.meta.events.register("before-send", capture)
    with pytest.raises(_Sent) as sent:
        getattr(client, xform_name(operation))()
    url, *scope = sent.value.args
    host = "/".join(str(url).split("/", 3)[:3]) + "/"  # where it is sent; the path is the operation's
    return (client.meta.region_name, host, *scope)


def _every_region() -> list[str]:
    endpoints = _full_session().get_component("data_loader").load_data("endpoints")
    return [region for partition in endpoints["partitions"] for region in partition["regions"]]


def _resolutions(service: str, data_path: str | None) -> dict[str, tuple[str, str, str, str]]:
    session = lambda_botocore_session(data_path)
    return {region: _signed_request(_client(session, service, region)) for region in _every_region()}


def _runtime_services() -> set[str]:
    return set(runtime_scan().services)


def test_every_service_the_runtime_makes_a_client_for_keeps_its_endpoint_data_when_scanned() -> None:
    services = _runtime_services()

    assert services >= {"ec2", "sns", "dynamodb", "secretsmanager"}, "the scan no longer sees the ClientFactory"
    assert services - set(ENDPOINT_SERVICES) == set(), "add them to ENDPOINT_SERVICES, then `make service-models`"


@pytest.mark.parametrize("service", sorted(_runtime_services() | set(ENDPOINT_SERVICES)))
def test_client_sends_where_botocores_full_data_would_in_every_region_when_aws_data_path_is_set(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    full = _resolutions(service, None)

    monkeypatch.setenv("AWS_DATA_PATH", _deployed_data_path())  # what Lambda's environment holds
    trimmed = _resolutions(service, None)

    assert {"cn-north-1", "us-gov-west-1", "us-iso-east-1"} <= set(full), "every partition's regions"
    assert {region: got for region, got in trimmed.items() if got != full[region]} == {}


def test_global_service_is_sent_to_a_regional_host_when_its_endpoint_data_is_dropped(tmp_path: Path) -> None:
    # Why ENDPOINT_SERVICES matters although endpoints come from rule sets: the client's region comes from here.
    data_path = tmp_path / "service_models"
    shutil.copytree(MODELS, data_path)
    endpoints = json.loads((data_path / "endpoints.json").read_text())
    for partition in endpoints["partitions"]:
        partition["services"].pop("iam", None)
    (data_path / "endpoints.json").write_text(json.dumps(endpoints))

    sent = _signed_request(_client(lambda_botocore_session(str(data_path)), "iam", "eu-west-1"))

    assert sent == ("eu-west-1", "https://iam.eu-west-1.amazonaws.com/", "eu-west-1", "iam")
    assert _resolutions("iam", None)["eu-west-1"] == ("aws-global", "https://iam.amazonaws.com/", "us-east-1", "iam")
