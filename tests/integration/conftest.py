"""Fixtures shared by the integration modules."""

from __future__ import annotations

from typing import Any, Dict, Iterator

import pytest


@pytest.fixture(scope="session")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    """The outcome-monitor stack of :mod:`integration.outcomes`, started once for
    test_outcomes_pipeline.py and test_outcomes_dashboard.py (Prometheus keeps running
    until the end of the session so that both can query it)."""
    from .outcomes import outcome_stack
    with outcome_stack(str(tmp_path_factory.mktemp("outcomes"))) as run:
        yield run
