"""Property-based checks of the dependency graph on random DAGs with random failures:
everything settles, exactly the right components run, and root causes are right."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simai.orchestrator import Orchestrator, OrchestratorConfig, SystemConfig, WorkflowComponent

pytestmark = pytest.mark.reliability


def run(fail):
    if fail:
        raise RuntimeError("injected")
    return "ok"


@st.composite
def dags(draw):
    n = draw(st.integers(1, 25))
    deps = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(n)]
    fails = [draw(st.booleans()) and draw(st.booleans()) for _ in range(n)]  # ~25%
    seed = draw(st.integers(0, 2**16))
    batch = draw(st.booleans())
    return deps, fails, seed, batch


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_random_dags_settle_correctly(dag):
    deps, fails, seed, batch = dag
    n = len(deps)
    comps = [
        WorkflowComponent(
            f"n{i}", run, args={"fail": fails[i]}, dependencies=[f"n{d}" for d in deps[i]]
        )
        for i in range(n)
    ]
    with Orchestrator(
        SystemConfig(ncpus=2), OrchestratorConfig(name="thread-pool", max_workers=3)
    ) as o:
        if batch:  # any order in one batch
            random.Random(seed).shuffle(comps)
            o.client.submit_many(comps)
        else:  # one by one, dependencies first
            for c in comps:
                o.client.submit(c)
        report = o.wait(timeout=60)
    assert report.done
    recs = report.records
    ok, ancestors = {}, {}
    for i in range(n):
        ancestors[i] = set(deps[i]).union(
            *(ancestors[d] for d in deps[i])
        )  # expected outcome, in topological order
        ok[i] = not fails[i] and all(ok[d] for d in deps[i])
        rec = recs[f"n{i}"]
        assert rec.status == ("succeeded" if ok[i] else "failed"), (i, deps, fails)
        if ok[i]:
            for d in deps[i]:
                assert rec.started >= recs[f"n{d}"].ended
        elif fails[i] and all(ok[d] for d in deps[i]):
            assert rec.root_cause == f"n{i}" and "injected" in rec.error
        else:
            # the root cause is an ancestor that failed on its own
            root = int(rec.root_cause[1:])
            assert root in ancestors[i] and fails[root]
            assert recs[rec.root_cause].root_cause == rec.root_cause
            assert rec.attempts == 0
