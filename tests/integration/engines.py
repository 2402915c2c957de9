"""The engine matrix: which binaries each engine runs and how a test starts one.

    spec = ENGINES["prometheus-3"]
    rules = write_rules(fast_config(), f"{workdir}/rules")     # generated.py
    with WebhookReceiver() as hook, \\
            spec.stack(workdir, ["127.0.0.1:8000"], rules, hook.url) as engine:
        engine.wait_up(1)
        engine.query("up")          # [{"metric": {...}, "value": 1.0}]
        at = engine.wait_evaluated_after(fed_at, targets=1)

=================  ==================================================  ======================
id                 engine                                              from
=================  ==================================================  ======================
prometheus-2       ``prometheus`` + ``prometheus-alertmanager``        the system (Debian 12:
                                                                       2.42 / 0.25)
prometheus-3       Prometheus 3.5 LTS + Alertmanager 0.33              Debian unstable
victoriametrics    VictoriaMetrics single-node (scrapes the targets)   Debian unstable
                   + vmalert (rules; results written back) +
                   Alertmanager 0.33
=================  ==================================================  ======================

The Debian unstable binaries are unpacked into .cache/engines/ by scripts/fetch-engines
(``make test`` runs it); this module reads that script's layout, so the cache folder and the
package list are defined once. The ``engine`` fixture of conftest.py runs a test on every
engine: an engine whose binaries are missing is skipped, or fails when the environment sets
``PROMDRIFT_REQUIRE_ENGINES=1`` (``make test`` does).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

import pytest

from .servers import (Alertmanager, Prometheus, RuleEngine, VictoriaMetrics,
                      VictoriaMetricsEngine, VMAlert)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FETCH_SCRIPT = os.path.join(ROOT, "scripts", "fetch-engines")
REQUIRE_ENV = "PROMDRIFT_REQUIRE_ENGINES"


@functools.lru_cache(maxsize=None)
def _fetch_script() -> Any:
    loader = importlib.machinery.SourceFileLoader("fetch_engines", FETCH_SCRIPT)
    spec = importlib.util.spec_from_loader("fetch_engines", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def sid_binary(name: str) -> Optional[str]:
    """The path of ``name`` fetched from Debian unstable, or None if it is not there."""
    path = os.path.join(_fetch_script().binaries_dir(), name)
    return path if os.access(path, os.X_OK) else None


def sid_versions() -> Dict[str, str]:
    """Debian package -> version of the fetched unstable packages ({} before a fetch)."""
    stamp = _fetch_script().read_stamp()
    return dict(stamp["packages"]) if stamp else {}


@functools.lru_cache(maxsize=None)
def binary_version(path: str) -> str:
    """``2.42.0`` from ``path --version`` (Prometheus' and Alertmanager's format), or ""."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    return m.group(1) if m else ""


@dataclass(frozen=True)
class EngineSpec:
    """One engine of the matrix: its binaries by role and how to start it.

    Roles: ``prometheus``, ``alertmanager``, ``promtool`` (Prometheus engines),
    ``victoria-metrics``, ``vmalert``, ``vmalert-tool``, ``alertmanager`` (VictoriaMetrics).
    """

    id: str
    binaries: Mapping[str, Optional[str]]
    remedy: str                                   # how to get missing binaries
    prometheus_major: Optional[int] = None        # the major version `prometheus` must have
    servers: Sequence[str] = field(default=())    # the roles a running stack needs

    def missing(self, roles: Optional[Iterable[str]] = None) -> Optional[str]:
        """Why the engine cannot run (None when it can): a missing binary or a Prometheus of
        the wrong major version."""
        roles = list(self.servers if roles is None else roles)
        absent = [r for r in roles if not self.binaries.get(r)]
        if absent:
            return f"{self.id}: {', '.join(absent)} not found; {self.remedy}"
        if self.prometheus_major is not None and "prometheus" in roles:
            version = binary_version(self.binaries["prometheus"])
            if not version.startswith(f"{self.prometheus_major}."):
                return (f"{self.id}: {self.binaries['prometheus']} is version "
                        f"{version or 'unknown'}, not {self.prometheus_major}.x")
        return None

    def versions(self) -> str:
        """``prometheus 2.42.0, alertmanager 0.25.0`` (VictoriaMetrics: the Debian version)."""
        out = []
        for role in self.servers:
            path = self.binaries[role]
            if path and role in ("prometheus", "alertmanager"):
                out.append(f"{role} {binary_version(path)}")
        if "victoria-metrics" in self.servers:
            out.append(f"victoria-metrics {sid_versions().get('victoria-metrics', '?')}")
        return ", ".join(out)

    @contextlib.contextmanager
    def stack(self, workdir: str, targets: Sequence[str], rule_files: Sequence[str],
              webhook_url: Optional[str] = None, interval: str = "1s",
              target_labels: Optional[Mapping[str, Mapping[str, str]]] = None
              ) -> Iterator[RuleEngine]:
        """Start the engine scraping ``targets`` (with ``target_labels``: see
        ``servers.scrape_config``) and evaluating ``rule_files`` every ``interval``, with an
        Alertmanager posting to ``webhook_url`` if given; yield the running
        :class:`RuleEngine`, stop everything on exit."""
        b = self.binaries
        with contextlib.ExitStack() as stack:
            am = None
            if webhook_url:
                am = stack.enter_context(Alertmanager(workdir, webhook_url,
                                                      binary=b["alertmanager"]))
            if "prometheus" in self.servers:
                yield stack.enter_context(Prometheus(
                    workdir, targets, rule_files, alertmanager=am and am.address,
                    interval=interval, binary=b["prometheus"], target_labels=target_labels))
                return
            vm = stack.enter_context(VictoriaMetrics(workdir, targets, interval=interval,
                                                     binary=b["victoria-metrics"],
                                                     target_labels=target_labels))
            vmalert = stack.enter_context(VMAlert(
                workdir, vm.url, rule_files, notifier=am and am.url, interval=interval,
                eval_delay=vm.latency_offset, binary=b["vmalert"]))
            yield VictoriaMetricsEngine(vm, vmalert)


_FETCH = "run scripts/fetch-engines (make test does)"


def _engines() -> Dict[str, EngineSpec]:
    system_am = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    return {
        "prometheus-2": EngineSpec(
            "prometheus-2",
            {"prometheus": shutil.which("prometheus"), "alertmanager": system_am,
             "promtool": shutil.which("promtool")},
            remedy="install the Debian packages prometheus and prometheus-alertmanager "
                   "(make system-deps)",
            prometheus_major=2, servers=("prometheus", "alertmanager")),
        "prometheus-3": EngineSpec(
            "prometheus-3",
            {"prometheus": sid_binary("prometheus"),
             "alertmanager": sid_binary("prometheus-alertmanager"),
             "promtool": sid_binary("promtool")},
            remedy=_FETCH, prometheus_major=3, servers=("prometheus", "alertmanager")),
        "victoriametrics": EngineSpec(
            "victoriametrics",
            {"victoria-metrics": sid_binary("victoria-metrics"),
             "vmalert": sid_binary("vmalert"), "vmalert-tool": sid_binary("vmalert-tool"),
             "alertmanager": sid_binary("prometheus-alertmanager")},
            remedy=_FETCH, servers=("victoria-metrics", "vmalert", "alertmanager")),
    }


ENGINES = _engines()
ENGINE_IDS = list(ENGINES)
PROMETHEUS_ENGINES = ("prometheus-2", "prometheus-3")
# Where a module runs when the suite time does not allow all three (its mark:
# ``pytest.mark.engines(*NEWEST)``): Prometheus 3 shares the Prometheus harness and the PromQL
# of Prometheus 2, and VictoriaMetrics is the other implementation. Prometheus 2 stays the
# reference of every module that compares engines (test_engines_agree).
NEWEST = ("prometheus-3", "victoriametrics")
# The comparisons of test_engines_agree: every engine against Debian's Prometheus 2.
ENGINE_PAIRS = [("prometheus-2", e) for e in ENGINE_IDS if e != "prometheus-2"]
PAIR_IDS = [f"{a}-vs-{b}" for a, b in ENGINE_PAIRS]


def need(spec: EngineSpec, roles: Optional[Iterable[str]] = None) -> None:
    """Skip the running test if ``spec`` cannot run (its ``roles``; default its servers), or
    fail it when ``PROMDRIFT_REQUIRE_ENGINES`` is set."""
    reason = spec.missing(roles)
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set: every engine must run)", pytrace=False)
    pytest.skip(reason)


# increase() / (the true increase) on each engine, for a counter at 0 for at least six scrapes
# before it moves, read within its window. Prometheus' increase() extrapolates to the end of
# the window by (sampled span + time to the window end) / sampled span: the samples span >= 5 s
# and the time to the end is < 1.1 scrape intervals, so the factor is in [1, 1.22] (in
# production, with a 1h window, within a scrape interval / 1h of 1). It is the same for every
# series of a target (same scrape timestamps, all starting at 0), so it cancels in every CDF
# and share. VictoriaMetrics' increase() is the difference between the last sample and the one
# before the window (or the first one, 0 here): no extrapolation.
EXTRAPOLATION = {"prometheus-2": (1.0, 1.22), "prometheus-3": (1.0, 1.22),
                 "victoriametrics": (1.0, 1.0)}
