"""Reliability suite: Hypothesis profiles and the tally of what the tests tried and found.

Set ``NEURALFACTOR_RELIABILITY_COUNTS=path.json`` to have the session write (overwrite) the
tally it made; without it nothing is written. Keys are ``<what>.<subject>``: integer counts
(property inputs tried / valid / accepted / refused / inaccurate / invalid rejected, CLI
argument lists, files refused, faults injected, runs recovered), the worst ratio to the
optimum per factorizer (a float) and the contracts the property counts were made under
(strings). ``benchmarks/reliability_page.py`` renders docs/results/reliability.md from them.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings

# "ci": derandomized (the same examples on every run) and small enough for the 2-core CI
# machine; "thorough": more, random examples for a local hunt (HYPOTHESIS_PROFILE=thorough).
settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=400,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_TALLY: Counter = Counter()


@pytest.fixture
def tally() -> Counter:
    """``tally[key] += 1`` counts an input tried, a fault injected or a file refused; a few
    keys hold a float (worst ratio) or a string (a contract) instead."""
    return _TALLY


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("NEURALFACTOR_RELIABILITY_COUNTS")
    if path and _TALLY:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(dict(sorted(_TALLY.items())), fh, indent=2)
            fh.write("\n")
