"""What may import what (docs/architecture.md): import budgets measured in fresh interpreters,
and the layers checked on the source (nothing imports upward, no import cycle).

Every check is run twice: on promdrift as it is, where it must find nothing, and with a
deliberate regression (an import the rule forbids, added to the code measured or to the
graph checked), where it must find exactly that: a check that cannot fail fails the test.
"""

import ast
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------ budgets
def loaded(code, cwd):
    """The modules a fresh interpreter has loaded after running ``code`` (in ``cwd``)."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def violations(modules, forbidden):
    """The loaded modules that match a forbidden name: ``x`` (the module and its submodules)
    or ``*.x`` (any module of that last name)."""
    out = set()
    for m in modules:
        for f in forbidden:
            if f.startswith("*."):
                if m.endswith(f[1:]):
                    out.add(m)
            elif m == f or m.startswith(f + "."):
                out.add(m)
    return sorted(out)


#: What no core module may load: the label store, web frameworks, the extras' packages.
NOT_IN_THE_CORE = ("sqlite3", "flask", "werkzeug", "starlette", "fastapi", "yaml", "requests",
                   "grafana_foundation_sdk", "h11", "bcrypt", "gunicorn", "uvicorn")
#: ... nor promdrift's layers above the core (docs/architecture.md).
ABOVE_THE_CORE = ("promdrift.instrumentation.outcomes", "promdrift.instrumentation.capture",
                  "promdrift.instrumentation.web", "promdrift.exporter", "promdrift.promql",
                  "promdrift.grafana")

FIT = """
    from promdrift import Baseline
    b = Baseline.fit({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}, model="m", bins=2)
    b.save("b.json")
    Baseline.load("b.json")
"""
COUNT = FIT + """
    from promdrift import DriftMonitor
    from prometheus_client import CollectorRegistry
    m = DriftMonitor("b.json", registry=CollectorRegistry())
    m.observe({"x": 2.0, "c": "a"})
    m.observe([{"x": 9.0, "c": None}])
    m.metrics_text()
"""
EXPOSE = COUNT + """
    from promdrift.instrumentation import make_asgi_app, make_wsgi_app, metrics_text
    make_wsgi_app(m.registry), make_asgi_app(m.registry), metrics_text(m.registry)
"""
GENERATE = """
    from promdrift.promql import RulesConfig, generate
    generate(RulesConfig(keep_labels=["cluster"]), "out")
"""
RULES_COMMAND = """
    from promdrift.exporter.cli import main
    assert main(["rules", "-o", "out", "-q"]) == 0
"""

#: (name, code, forbidden modules, the import a regression would add)
BUDGETS = [
    ("import promdrift", "import promdrift",
     ("numpy", "prometheus_client", "importlib.metadata", "promdrift.instrumentation",
      "promdrift.exporter"), "import numpy"),
    *[(f"core leaf {m}", f"import promdrift.instrumentation.{m}",
       NOT_IN_THE_CORE + ABOVE_THE_CORE, "import sqlite3")
      for m in ("values", "binning", "spec", "files", "training.baseline", "counting.store",
                "counting.exposition", "counting.monitor")],
    ("the leaf values alone", "import promdrift.instrumentation.values",
     ("prometheus_client", "promdrift.instrumentation.training",
      "promdrift.instrumentation.counting"), "import promdrift.instrumentation.counting.store"),
    ("Baseline: fit, save, load", FIT,
     NOT_IN_THE_CORE + ABOVE_THE_CORE + ("prometheus_client", "promdrift.instrumentation.counting",
                                         "pandas"),
     "import promdrift.instrumentation.outcomes.quality"),
    ("DriftMonitor: count and render", COUNT, NOT_IN_THE_CORE + ABOVE_THE_CORE,
     "import promdrift.instrumentation.web.flask"),
    ("every /metrics drop-in", EXPOSE, NOT_IN_THE_CORE + ABOVE_THE_CORE, "import flask"),
    ("the client", "from promdrift.exporter.client import ExporterClient",
     ("numpy", "prometheus_client", "promdrift.instrumentation", "promdrift.exporter.service"),
     "import promdrift.instrumentation.values"),
    ("the capture reader", "from promdrift.instrumentation.capture import read_capture",
     ("numpy", "prometheus_client", "promdrift.instrumentation.counting",
      "promdrift.instrumentation.capture.writer"), "import numpy"),
    ("generating rules and dashboards", GENERATE,
     ("*.monitor", "sqlite3", "prometheus_client", "flask", "promdrift.instrumentation.counting",
      "promdrift.instrumentation.outcomes", "promdrift.exporter"),
     "import promdrift.instrumentation.counting.monitor"),
    ("promdrift rules", RULES_COMMAND,
     ("*.monitor", "sqlite3", "prometheus_client", "flask",
      "promdrift.instrumentation.counting", "promdrift.instrumentation.outcomes",
      "promdrift.exporter.service.app"),
     "from promdrift.instrumentation import DriftMonitor"),
]


@pytest.mark.parametrize("name, code, forbidden, regression", BUDGETS,
                         ids=[b[0] for b in BUDGETS])
def test_import_budget(name, code, forbidden, regression, tmp_path):
    assert violations(loaded(code, tmp_path), forbidden) == []
    # the same budget with the import a regression would add is broken
    regressed = textwrap.dedent(code) + "\n" + regression
    assert violations(loaded(regressed, tmp_path), forbidden) != []


def test_promdrift_alone_loads_its_own_two_modules(tmp_path):
    base = loaded("", tmp_path)
    assert sorted(loaded("import promdrift", tmp_path) - base) == ["promdrift", "promdrift._lazy"]


# ------------------------------------------------------------------------------ layers
#: Source folder -> package.
FOLDERS = {"promdrift": "promdrift", "instrumentation": "promdrift.instrumentation",
           "exporter": "promdrift.exporter", "promql": "promdrift.promql",
           "grafana": "promdrift.grafana"}

#: The layers, bottom up (docs/architecture.md); a module is in the layer of its longest
#: listed prefix. A module may import its own layer and those below.
LAYERS = [
    ("leaves", ["promdrift", "promdrift._lazy", "promdrift.extras",
                "promdrift.instrumentation.values", "promdrift.instrumentation.binning",
                "promdrift.instrumentation.spec", "promdrift.instrumentation.files"]),
    ("training", ["promdrift.instrumentation.training"]),
    ("counting", ["promdrift.instrumentation.counting"]),
    ("plugins", ["promdrift.instrumentation.outcomes", "promdrift.instrumentation.capture"]),
    ("web", ["promdrift.instrumentation.web", "promdrift.instrumentation.gunicorn",
             "promdrift.instrumentation.uvicorn"]),
    ("rule model", ["promdrift.promql"]),
    ("dashboards", ["promdrift.grafana"]),
    ("generator", ["promdrift.promql.generator", "promdrift.promql.cli"]),
    ("exporter and command line", ["promdrift.exporter"]),
]
#: Package __init__ modules are facades: they import nothing at run time (their names are
#: lazy), so they stand above everything.
FACADES = {"promdrift", "promdrift.instrumentation", "promdrift.exporter", "promdrift.promql",
           "promdrift.grafana", "promdrift.instrumentation.outcomes",
           "promdrift.instrumentation.capture", "promdrift.exporter.service"}
#: The one sanctioned upward import: DriftMonitor's builder methods import, when called, the
#: plug-in or integration they plug in (capture_to, track_labels, track_facets,
#: track_attributions, instrument, track). Never at import time.
CALL_TIME_UPWARD = {
    ("promdrift.instrumentation.counting.monitor", "promdrift.instrumentation.capture.writer"),
    ("promdrift.instrumentation.counting.monitor", "promdrift.instrumentation.outcomes.quality"),
    ("promdrift.instrumentation.counting.monitor", "promdrift.instrumentation.outcomes.bias"),
    ("promdrift.instrumentation.counting.monitor",
     "promdrift.instrumentation.outcomes.attribution"),
    ("promdrift.instrumentation.counting.monitor", "promdrift.instrumentation.web.flask"),
    ("promdrift.instrumentation.counting.monitor", "promdrift.instrumentation.web.asgi"),
    ("promdrift.instrumentation.counting.monitor", "promdrift.instrumentation.web.tracking"),
}


def _modules():
    """module name -> (path, is package) for every promdrift module."""
    out = {}
    for folder, package in FOLDERS.items():
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            rel = os.path.relpath(dirpath, os.path.join(ROOT, folder))
            parts = [] if rel == "." else rel.split(os.sep)
            if "__pycache__" in parts or not os.path.exists(os.path.join(dirpath, "__init__.py")):
                continue
            for f in files:
                if f.endswith(".py"):
                    name = ".".join([package, *parts] + ([] if f == "__init__.py" else [f[:-3]]))
                    out[name] = (os.path.join(dirpath, f), f == "__init__.py")
    return out


MODULES = _modules()


def _module(name):
    """An imported name as the promdrift module it loads, or None: a module, or the module
    a package's lazy ``__getattr__`` takes the name from."""
    if name in MODULES:
        return name
    package, _, attr = name.rpartition(".")
    if package in MODULES and MODULES[package][1]:
        getattr_ = getattr(importlib.import_module(package), "__getattr__", None)
        where = getattr(getattr_, "exports", {}).get(attr)
        if where is not None:
            return importlib.util.resolve_name(where, package)
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module):
    """``(target, at_import_time)`` of every promdrift module ``module`` imports; imports
    under ``if TYPE_CHECKING:`` are left out."""
    path, is_package = MODULES[module]
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = module if is_package else module.rpartition(".")[0]
    out = set()

    def visit(node, at_import_time):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                continue
            now = at_import_time and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in child.names]
            for t in targets:
                if t.startswith("promdrift"):
                    found = _module(t)
                    if found and found != module:
                        out.add((found, now))
            visit(child, now)

    visit(tree, True)
    return out


def layer(module):
    if module in FACADES:
        return len(LAYERS)
    best, rank = "", None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, rank = p, i
    assert rank is not None, f"{module} is in no layer of LAYERS: add it"
    return rank


def upward(edges):
    """The imports of ``edges`` ((source, target, at import time)) that go up a layer, but
    the sanctioned call-time ones. A facade imports nothing when imported: importing it (its
    ``__version__``) goes nowhere; a name of it counts as an import of its module."""
    return sorted((s, t) for s, t, now in edges if t not in FACADES and layer(t) > layer(s)
                  and (now or (s, t) not in CALL_TIME_UPWARD))


def import_time_graph(edges):
    """source -> targets at import time, with the parent packages every import runs (a
    package importing its own submodules is no cycle: Python initialises it first)."""
    graph = {m: set() for m in MODULES}
    for s, t, now in edges:
        if now and not (MODULES[s][1] and t.startswith(s + ".")):
            graph[s].add(t)
    for m in MODULES:  # importing a module first imports its package
        parent = m.rpartition(".")[0]
        if parent in MODULES:
            graph[m].add(parent)
    return graph


def cycle(graph):
    """One import cycle of ``graph`` as a list of modules, or []."""
    state, stack = {}, []

    def dfs(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = dfs(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return []

    for m in sorted(graph):
        if m not in state:
            found = dfs(m)
            if found:
                return found
    return []


EDGES = {(s, t, now) for s in MODULES for t, now in imports(s)}


def test_every_module_is_in_a_layer():
    for m in MODULES:
        layer(m)
    assert "promdrift.instrumentation.counting.monitor" in MODULES and len(MODULES) > 60


def test_nothing_imports_upward():
    assert upward(EDGES) == []
    # a regression is caught: the counting store importing the label store, a leaf the
    # monitor, the monitor an integration at import time
    assert upward(EDGES | {
        ("promdrift.instrumentation.counting.store",
         "promdrift.instrumentation.outcomes.quality", True)}) != []
    assert upward(EDGES | {("promdrift.instrumentation.values",
                            "promdrift.instrumentation.counting.monitor", False)}) != []
    assert upward(EDGES | {("promdrift.instrumentation.counting.monitor",
                            "promdrift.instrumentation.web.flask", True)}) != []


def generator_reaches_past_the_leaves(edges):
    """Imports of the generator's column (promql, grafana) into the runtime above its leaves."""
    leaves = set(LAYERS[0][1])
    return sorted((s, t) for s, t, _ in edges
                  if s.startswith(("promdrift.promql", "promdrift.grafana"))
                  and t.startswith("promdrift.instrumentation") and t not in leaves
                  and t != "promdrift.instrumentation")


def test_the_generator_reads_only_the_leaves_of_the_runtime():
    assert generator_reaches_past_the_leaves(EDGES) == []
    assert generator_reaches_past_the_leaves(EDGES | {
        ("promdrift.promql.expr", "promdrift.instrumentation.training.columns", True)}) != []


def test_the_call_time_exceptions_exist():
    """Each sanctioned call-time import is still there (else it leaves the list)."""
    assert {(s, t) for s, t, now in EDGES if not now} >= CALL_TIME_UPWARD


def test_no_import_cycle():
    assert cycle(import_time_graph(EDGES)) == []
    # the cycle this layout removed (the generator's header read by the dashboards, which
    # the generator imports) is caught
    assert cycle(import_time_graph(EDGES | {
        ("promdrift.grafana.board", "promdrift.promql.generator", True),
        ("promdrift.promql.generator", "promdrift.grafana.build", True)})) != []
