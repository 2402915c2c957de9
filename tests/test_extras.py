"""Install by use: the core's dependencies, the extras, and the one error a missing extra
raises at every optional import site (promdrift.extras.require)."""

import os
import re
import subprocess
import sys
import textwrap
import tomllib

import pytest

from promdrift.extras import MissingExtra, require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "pyproject.toml"), "rb") as _f:
    PROJECT = tomllib.load(_f)["project"]
EXTRAS = PROJECT["optional-dependencies"]


def _names(requirements):
    """Distribution names of requirement strings, lower case ("promdrift[flask]" kept)."""
    return {re.split(r"[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def _closure(extra):
    """Every distribution an extra brings, through the extras it names."""
    out = set()
    for name in _names(EXTRAS[extra]):
        m = re.fullmatch(r"promdrift\[(.+)\]", name)
        if m:
            for e in m[1].split(","):
                out |= _closure(e)
        else:
            out.add(name)
    return out


def test_the_core_needs_numpy_and_prometheus_client_only():
    assert _names(PROJECT["dependencies"]) == {"numpy", "prometheus-client"}


@pytest.mark.parametrize("extra, brings", [
    ("flask", {"flask"}),
    ("asgi", set()),
    ("server", {"gunicorn", "uvicorn"}),
    ("exporter", {"flask", "gunicorn", "h11", "bcrypt", "pyyaml"}),
    ("rules", {"pyyaml", "grafana-foundation-sdk"}),
    ("client", {"requests"}),
    ("report", set()),
])
def test_each_extra_brings_what_its_use_needs(extra, brings):
    assert _closure(extra) == brings


def test_all_is_every_extra_and_the_tests_install_all():
    uses = set(EXTRAS) - {"all", "test"}
    assert _closure("all") == set().union(*(_closure(e) for e in uses))
    assert "promdrift[all]" in _names(EXTRAS["test"])


def test_the_design_cards_packages_stay_dependencies():
    everything = _names(PROJECT["dependencies"]) | _closure("all")
    assert {"prometheus-client", "numpy", "flask", "requests"} <= everything


def test_only_the_rules_extra_pins_exactly():
    """No exact pin reaches a model server: the Grafana SDK's is in `rules` only."""
    for extra, requirements in [("core", PROJECT["dependencies"]), *EXTRAS.items()]:
        pinned = [r for r in requirements if "==" in r]
        assert pinned == ([] if extra != "rules" else
                          ["grafana-foundation-sdk==1769699379!11.6.0"]), extra


def test_require_returns_the_module_or_names_the_extra():
    assert require("client", "json", "requests").__name__ == "json"
    with pytest.raises(MissingExtra) as e:
        require("client", "promdrift_test_not_installed", "requests")
    assert str(e.value) == "requests is not installed: pip install 'promdrift[client]'"
    assert isinstance(e.value, ImportError) and e.value.extra == "client"


def test_require_keeps_the_error_of_an_installed_package_that_is_broken(tmp_path, monkeypatch):
    (tmp_path / "promdrift_test_broken.py").write_text("import promdrift_test_absent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as e:
        require("client", "promdrift_test_broken", "broken")
    assert not isinstance(e.value, MissingExtra) and e.value.name == "promdrift_test_absent"


def run_without(blocked, code, cwd):
    """Run ``code`` in a fresh interpreter in which the modules ``blocked`` are not installed
    (an import of them raises ModuleNotFoundError)."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


#: Each optional import site, run without its dependency: the extra its error names.
SITES = {
    "client": (["requests"], "from promdrift import ExporterClient"),
    "rules-sdk": (["grafana_foundation_sdk"], "from promdrift.grafana import dashboards"),
    "rules-yaml": (["yaml"], """
        open("c.yaml", "w").write("keep_labels: [cluster]")
        from promdrift.promql import RulesConfig
        RulesConfig.load("c.yaml")"""),
    "exporter-flask": (["flask"], "import promdrift.exporter.service.app"),
    "exporter-h11": (["h11"], "import promdrift.exporter.service.httpserver"),
    "exporter-gunicorn": (["gunicorn"], "import promdrift.exporter.service.worker"),
    "exporter-yaml": (["yaml"], """
        open("web.yml", "w").write("{}")
        from promdrift.exporter.service.webconfig import WebConfig
        WebConfig.load("web.yml")"""),
    "exporter-bcrypt": (["bcrypt"], """
        from promdrift.exporter.service.webconfig import BasicAuth
        BasicAuth({})"""),
    "server-uvicorn": (["uvicorn"], """
        from promdrift.instrumentation.uvicorn import run
        run("app:app")"""),
    "flask": (["flask"], """
        from promdrift.instrumentation import Baseline, DriftMonitor
        from promdrift.instrumentation.web.flask import instrument
        monitor = DriftMonitor(Baseline.fit({"x": [1.0, 2.0]}), registry=None)
        instrument(monitor, object())"""),
}


@pytest.mark.parametrize("site", sorted(SITES))
def test_a_missing_dependency_names_its_extra(site, tmp_path):
    blocked, code = SITES[site]
    extra = site.split("-")[0]
    done = run_without(blocked, code, tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("promdrift.extras.MissingExtra: "), done.stderr
    assert last.endswith(f"is not installed: pip install 'promdrift[{extra}]'"), last
    # the same code runs with everything installed (the test extra installs every extra)
    if site not in ("server-uvicorn", "flask"):  # these two then go on to serve an app
        assert run_without([], code, tmp_path).returncode == 0


def cli(blocked, args, cwd):
    return run_without(blocked, f"""
        from promdrift.exporter.cli import main
        sys.exit(main({args!r}))""", cwd)


@pytest.mark.parametrize("blocked, args, extra", [
    (["grafana_foundation_sdk"], ["rules", "-o", "out"], "rules"),
    (["yaml"], ["rules", "-o", "out", "--config", "c.yaml"], "rules"),
    (["flask"], ["exporter", "--baseline", "b.json"], "exporter"),
])
def test_a_subcommand_without_its_extra_prints_one_line(blocked, args, extra, tmp_path):
    (tmp_path / "c.yaml").write_text("keep_labels: [cluster]\n")
    done = cli(blocked, args, tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"promdrift: error: {_package(blocked[0])} is not installed: pip install "
        f"'promdrift[{extra}]'"], done.stderr
    assert not os.path.exists(tmp_path / "out" / "rules.yml")


def _package(module):
    return {"grafana_foundation_sdk": "grafana-foundation-sdk", "yaml": "PyYAML",
            "flask": "Flask"}[module]


def test_rules_without_dashboards_need_no_extra(tmp_path):
    done = cli(["grafana_foundation_sdk", "yaml"], ["rules", "-o", "out", "--no-dashboards",
                                                     "-q"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["alerts.yml", "prometheusrule.yaml",
                                                    "rules.yml"]
