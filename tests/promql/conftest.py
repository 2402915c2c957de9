"""Start the rule-tool runs of the collected tests in the background (promql.background)."""

from __future__ import annotations

from typing import Any


def pytest_collection_finish(session: Any) -> None:
    from .test_rule_engines import JOBS, job_key
    keys = [job_key(item) for item in session.items]
    JOBS.start(k for k in keys if k)


def pytest_sessionfinish(session: Any) -> None:
    from .test_rule_engines import JOBS
    JOBS.stop()
