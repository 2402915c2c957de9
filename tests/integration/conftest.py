"""Fixtures shared by the integration modules: the engine matrix and the outcomes stack."""

from __future__ import annotations

from typing import Any, Dict, Iterator

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


@pytest.fixture(scope="session")
def outcomes(engine: EngineSpec, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Dict[str, Any]]:
    """The outcome-monitor stack of :mod:`integration.outcomes` on ``engine``, started once for
    test_outcomes_pipeline.py and test_outcomes_dashboard.py (the engine keeps running until
    the tests of the next engine start, so that both modules can query it)."""
    from .outcomes import outcome_stack
    with outcome_stack(engine, str(tmp_path_factory.mktemp(f"outcomes-{engine.id}"))) as run:
        yield run
