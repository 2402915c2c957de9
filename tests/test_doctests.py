"""The examples in the docstrings of every promdrift module run and pass."""

import doctest
import importlib
import pkgutil

import pytest

import promdrift.exporter as exporter_pkg
import promdrift.grafana as grafana_pkg
import promdrift.instrumentation as pkg
import promdrift.promql as promql_pkg

MODULES = sorted({"promdrift.instrumentation", "promdrift.promql", "promdrift.grafana"} | {
    f"{p.__name__}.{m.name}" for p in (pkg, exporter_pkg, promql_pkg, grafana_pkg)
    for m in pkgutil.iter_modules(p.__path__)})
WITH_EXAMPLES = {"promdrift.instrumentation", "promdrift.instrumentation.binning",
                 "promdrift.instrumentation.baseline", "promdrift.instrumentation.tabular",
                 "promdrift.instrumentation.store", "promdrift.instrumentation.exposition",
                 "promdrift.instrumentation.monitor", "promdrift.instrumentation.flask",
                 "promdrift.instrumentation.capture", "promdrift.instrumentation.landing",
                 "promdrift.instrumentation.quality", "promdrift.instrumentation.bias",
                 "promdrift.instrumentation.attribution", "promdrift.instrumentation.outcomes",
                 "promdrift.instrumentation.multiprocess", "promdrift.instrumentation.gunicorn",
                 "promdrift.instrumentation.multivariate", "promdrift.instrumentation.derived",
                 "promdrift.exporter.service", "promdrift.exporter.client",
                 "promdrift.exporter.serve", "promdrift.exporter.stack",
                 "promdrift.exporter.trial", "promdrift.instrumentation.files",
                 "promdrift.instrumentation.spec", "promdrift.promql", "promdrift.promql.config",
                 "promdrift.promql.expr", "promdrift.promql.rules", "promdrift.promql.alerts",
                 "promdrift.promql.generate", "promdrift.promql.yamlout", "promdrift.grafana",
                 "promdrift.grafana.board", "promdrift.grafana.panels",
                 "promdrift.grafana.columns",
                 "promdrift.grafana.overview", "promdrift.grafana.feature",
                 "promdrift.grafana.predictions", "promdrift.grafana.outcomes",
                 "promdrift.instrumentation.values", "promdrift.instrumentation.columns",
                 "promdrift.instrumentation.plugins", "promdrift.instrumentation.tracking",
                 "promdrift.instrumentation.asgi", "promdrift.instrumentation.checks",
                 "promdrift.exporter.server", "promdrift.exporter.limits",
                 "promdrift.exporter.metrics", "promdrift.exporter.webconfig",
                 "promdrift.exporter.worker", "promdrift.instrumentation.uvicorn"}


def test_the_core_modules_are_found():
    assert WITH_EXAMPLES <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, verbose=False, report=True,
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name in WITH_EXAMPLES:
        assert result.attempted > 0
