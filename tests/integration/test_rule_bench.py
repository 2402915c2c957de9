"""benchmarks/rules.py fills the rules' windows with history before the live scrapes start:
the history it sends a real Prometheus must be exactly what scrapes of the monitors would
have stored, and the live scrapes must continue those series (same labels, no counter reset).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import re
import sys
import time

import numpy as np
import pytest

from .servers import PROMETHEUS, Prometheus, http_get, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROMETHEUS is None, reason="needs the prometheus binary"),
]

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = 30
ARGS = argparse.Namespace(rate=50, invalid=0.05, bins=5, replicas=2, categorical=2,
                          categories=4, per_request=7, timeout=60.0)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("rule_bench", ROOT / "benchmarks" / "rules.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def exposed(url: str) -> dict:
    """(name, labels) -> value of a text exposition."""
    out = {}
    for line in http_get(url + "/metrics").decode().splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            name, _, rest = series.partition("{")
            pairs = re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest)
            out[(name, frozenset(pairs))] = float(value)
    return out


def test_history_is_what_scrapes_store_and_live_scrapes_continue_it(bench, tmp_path):
    with bench.Fleet(1, 3, ARGS) as fleet, Prometheus(
            str(tmp_path), [], [], interval="1s",
            extra_args=["--web.enable-remote-write-receiver", "--web.enable-lifecycle"]) as prom:
        with open(prom.config_path) as f:
            job = json.load(f)["scrape_configs"][0]["job_name"]
        labels = fleet.series(job)
        fleet.check_series(labels)
        history = np.empty((STEPS, len(labels)))
        for i in range(STEPS):
            fleet.advance(1.0)
            history[i] = fleet.values()
        # The last step is exactly what the targets expose now, series by series.
        now = {}
        for app in fleet.apps:
            now.update({(n, lab | {("job", job), ("instance", app.address)}): v
                        for (n, lab), v in exposed(app.url).items()})
        assert len(now) == len(labels)
        for lab, value in zip(labels, history[-1]):
            key = (lab["__name__"], frozenset((k, v) for k, v in lab.items() if k != "__name__"))
            assert now[key] == value, key
        assert history[-1].sum() > history[0].sum()  # the counters grew

        end = time.time() - 1
        stamps = np.round((end - np.arange(STEPS)[::-1]) * 1000).astype(np.int64)
        for body in bench.write_requests(labels, history, stamps, ARGS.per_request, 8):
            bench.remote_write(prom.url, body, ARGS.timeout)
        stored = bench.matrix(prom, f'{{job="{job}"}}[1h]', at=end)
        assert len(stored) == len(labels)
        index = {frozenset(lab.items()): i for i, lab in enumerate(labels)}
        for series in stored:
            i = index[frozenset(series["metric"].items())]
            assert [round(float(t) * 1000) for t, _ in series["values"]] == stamps.tolist()
            assert [float(v) for _, v in series["values"]] == history[:, i].tolist()

        fleet.start_traffic()
        bench.reconfigure(prom, os.path.join(str(tmp_path), "staged"),
                          [a.address for a in fleet.apps], [], "1s", ARGS.timeout)
        wait_until(lambda: min(r["value"] for r in bench.query(prom, "timestamp(up)"))
                   > time.time() - 1 and len(bench.query(prom, "up == 1")) == len(fleet.apps),
                   timeout=60, what="live scrapes")
        wait_until(lambda: min(r["value"] for r in bench.query(
            prom, 'count_over_time(promdrift_feature_value_count[1h])')) >= STEPS + 3,
            timeout=60, what="three live scrapes after the history")
        series_now = bench.query(prom, f'count({{job="{job}", __name__=~"promdrift_.+"}})')
        series_hour = bench.query(
            prom, f'count(last_over_time({{job="{job}", __name__=~"promdrift_.+"}}[1h]))')
        assert series_now[0]["value"] == series_hour[0]["value"] == len(labels)
        for counter in ("promdrift_feature_value_bucket", "promdrift_feature_category_total",
                        "promdrift_feature_invalid_total", "promdrift_inferences_total"):
            resets = bench.query(prom, f"sum(resets({counter}[1h]))")
            assert resets[0]["value"] == 0, counter
