"""Fixtures shared by the integration modules: the engine matrix and the outcomes stack."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import pytest

from .engines import ENGINE_IDS, ENGINES, EngineSpec, need


@pytest.fixture(scope="session", params=ENGINE_IDS)
def engine(request: pytest.FixtureRequest) -> EngineSpec:
    """Each engine of the matrix (tests/integration/engines.py) in turn: a test using it runs
    once per engine, with the id in its name (``test_x[prometheus-3]``). Skipped when the
    engine's binaries are missing; failed instead under ``PROMDRIFT_REQUIRE_ENGINES=1``.
    Session scope: pytest runs every test of one engine before it starts the next, so each
    module starts one stack per engine."""
    spec = ENGINES[request.param]
    need(spec)
    return spec


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Deselect the runs on engines that a test's ``engines`` mark leaves out:
    ``pytestmark = pytest.mark.engines(*engines.NEWEST)`` runs a module's ``engine`` tests on
    those engines only (reported as deselected)."""
    keep, drop = [], []
    for item in items:
        mark = item.get_closest_marker("engines")
        engine = getattr(getattr(item, "callspec", None), "params", {}).get("engine")
        (drop if mark and engine and engine not in mark.args else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def outcomes(engine: EngineSpec, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Dict[str, Any]]:
    """The outcome-monitor stack of :mod:`integration.outcomes` on ``engine``, started once for
    test_outcomes_pipeline.py and test_outcomes_dashboard.py (the engine keeps running until
    the tests of the next engine start, so that both modules can query it)."""
    from .outcomes import outcome_stack
    with outcome_stack(engine, str(tmp_path_factory.mktemp(f"outcomes-{engine.id}"))) as run:
        yield run
