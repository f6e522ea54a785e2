"""Hypothesis profiles for the fuzz suite: ``ci`` (the default, in ``make test``: 100 events per function, about a
minute on 2 cores), ``deep`` (1,000) and ``nightly`` (>= 10,000 per function: ``make fuzz-nightly``). Choose one
with ``HYPOTHESIS_PROFILE``.

``deadline=None``: one event goes through moto and the real handler, whose time varies with the machine's load;
a slow example is not a failure. The sandbox is one per test module (a module-scoped fixture), so the
function-scoped-fixture health check does not apply and examples share an account, as Lambda invocations do.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "database": None,  # nothing written into the checkout; a failure prints its reproduction blob instead
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("deep", max_examples=1_000, **_COMMON)  # a developer's soak before a change lands
settings.register_profile("nightly", max_examples=10_000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
