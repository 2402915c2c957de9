"""The examples in the docstrings of every promdrift module run and pass."""

import doctest
import importlib
import pkgutil

import pytest

import promdrift
import promdrift.exporter
import promdrift.grafana
import promdrift.instrumentation
import promdrift.promql

#: Every package and module of promdrift, subpackages included.
PACKAGES = (promdrift, promdrift.instrumentation, promdrift.exporter, promdrift.promql,
            promdrift.grafana)
MODULES = sorted({p.__name__ for p in PACKAGES} | {
    m.name for p in PACKAGES[1:]
    for m in pkgutil.walk_packages(p.__path__, p.__name__ + ".")} | {
    f"promdrift.{m.name}" for m in pkgutil.iter_modules(promdrift.__path__)})
_I, _E = "promdrift.instrumentation", "promdrift.exporter"
WITH_EXAMPLES = {
    "promdrift", "promdrift._lazy",
    _I, f"{_I}.values", f"{_I}.binning", f"{_I}.spec", f"{_I}.files", f"{_I}.gunicorn",
    f"{_I}.uvicorn",
    f"{_I}.training.baseline", f"{_I}.training.columns", f"{_I}.training.checks",
    f"{_I}.training.tabular", f"{_I}.training.multivariate", f"{_I}.training.references",
    f"{_I}.counting.monitor", f"{_I}.counting.store", f"{_I}.counting.multiprocess",
    f"{_I}.counting.exposition", f"{_I}.counting.derived", f"{_I}.counting.plugins",
    f"{_I}.outcomes", f"{_I}.outcomes.quality", f"{_I}.outcomes.bias",
    f"{_I}.outcomes.attribution", f"{_I}.outcomes.labels",
    f"{_I}.capture", f"{_I}.capture.writer", f"{_I}.capture.reader",
    f"{_I}.web.flask", f"{_I}.web.asgi", f"{_I}.web.tracking", f"{_I}.web.landing",
    f"{_E}.client", f"{_E}.stack", f"{_E}.trial",
    f"{_E}.service.app", f"{_E}.service.command", f"{_E}.service.httpserver",
    f"{_E}.service.worker", f"{_E}.service.limits", f"{_E}.service.metrics",
    f"{_E}.service.webconfig",
    "promdrift.promql", "promdrift.promql.config", "promdrift.promql.expr",
    "promdrift.promql.rules", "promdrift.promql.alerts", "promdrift.promql.header",
    "promdrift.promql.generator", "promdrift.promql.yamlout",
    "promdrift.grafana", "promdrift.grafana.build", "promdrift.grafana.board",
    "promdrift.grafana.panels", "promdrift.grafana.columns", "promdrift.grafana.overview",
    "promdrift.grafana.feature", "promdrift.grafana.predictions", "promdrift.grafana.outcomes",
}


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
