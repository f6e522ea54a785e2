"""Reserved concurrency: the rest of the account cannot starve public_guard, and nothing throttles it to zero."""

from __future__ import annotations

from typing import Any

import pytest

from amiguard_cli.sandbox.cfn import serverless_functions

pytestmark = pytest.mark.infra

# Lambda keeps at least 100 executions unreserved per account and region: a large reservation would fail
# the deploy in small accounts and take capacity from everything else.
MAX_SENSIBLE_RESERVATION = 10


def test_public_guard_reserves_a_small_concurrency_when_deployed(template: dict[str, Any]) -> None:
    reserved = serverless_functions(template)["public_guard"].get("ReservedConcurrentExecutions")

    assert isinstance(reserved, int), "public_guard needs ReservedConcurrentExecutions (a literal number)"
    assert 1 <= reserved <= MAX_SENSIBLE_RESERVATION


def test_no_function_is_deployed_throttled_when_a_reservation_is_set(template: dict[str, Any]) -> None:
    for name, properties in serverless_functions(template).items():
        assert properties.get("ReservedConcurrentExecutions", 1) != 0, f"{name} would never run"
