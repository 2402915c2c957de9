"""The engine harness itself, on every engine, with a rule file of its own (not promql/).

One counter served by a Flask-less WSGI app, one self-contained recording rule and one alert
on it: after the counter jumps, :meth:`RuleEngine.wait_evaluated_after` must return a time at
which the rule already holds the jump (exactly on VictoriaMetrics, up to increase()'s
extrapolation on Prometheus) while a reading a second before the jump holds 0, and the alert
must reach the webhook through the engine's Alertmanager with exactly the rule's labels. This
is what the other integration modules rely on to read promdrift's rules at the right moment.
The last tests check how a missing engine is reported.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict

import pytest
import yaml

from .engines import ENGINES, EXTRAPOLATION, NEWEST, REQUIRE_ENV, EngineSpec, need
from .servers import AppServer, WebhookReceiver, wait_until

# Prometheus 2 runs the same Prometheus harness as Prometheus 3, and every pipeline module
# reads its rules with it: the harness's own checks run on the two others (suite time).
pytestmark = [pytest.mark.integration, pytest.mark.engines(*NEWEST)]

JUMP = 37
RULES = {"groups": [{"name": "harness", "rules": [
    {"record": "job:harness_events:increase30s",
     "expr": "sum by (job) (increase(harness_events_total[30s]))"},
    {"alert": "HarnessEventsSeen",
     "expr": "sum by (job) (increase(harness_events_total[30s])) > 0",
     "for": "2s", "labels": {"severity": "warning"},
     "annotations": {"summary": "events seen",
                     "description": "{{ $value }} events in the window"}},
]}]}


@pytest.fixture(scope="module")
def harness(engine: EngineSpec, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    from prometheus_client import CollectorRegistry, Counter, make_wsgi_app

    workdir = str(tmp_path_factory.mktemp(f"harness-{engine.id}"))
    path = os.path.join(workdir, "harness.yml")
    with open(path, "w") as f:
        yaml.safe_dump(RULES, f)
    registry = CollectorRegistry()
    events = Counter("harness_events", "Events.", registry=registry)
    with WebhookReceiver() as hook, AppServer(make_wsgi_app(registry)) as app, \
            engine.stack(workdir, [app.address], [path], hook.url) as eng:
        eng.wait_up(1, timeout=40, scrapes=6)   # the counter at 0 (see EXTRAPOLATION)
        since = time.time()
        events.inc(JUMP)
        at = eng.wait_evaluated_after(since, 1)
        record = "job:harness_events:increase30s"
        got = {"before": eng.query(record, at=since - 1), "at": eng.query(record, at=at),
               "raw": eng.query("sum(harness_events_total)", at=at)}
        wait_until(lambda: hook.alerts(), timeout=60, interval=0.5, what="the alert")
        return {"engine": engine, "values": got, "alerts": hook.alerts(),
                "fed_to_at": at - since}


def test_the_reading_time_holds_the_data_and_no_earlier_reading_does(harness) -> None:
    v = harness["values"]
    lo, hi = EXTRAPOLATION[harness["engine"].id]
    assert [s["value"] for s in v["before"]] == [0.0]
    assert [s["value"] for s in v["raw"]] == [float(JUMP)]
    (value,) = [s["value"] for s in v["at"]]
    assert JUMP * lo - 1e-9 <= value <= JUMP * hi + 1e-9
    assert v["at"][0]["metric"] == {"__name__": "job:harness_events:increase30s",
                                    "job": "promdrift"}
    print(f"\n{harness['engine'].id} ({harness['engine'].versions()}): increase {value:.4f} "
          f"for {JUMP}, read at {harness['fed_to_at']:.1f} s after the counter moved")


def test_the_alert_reaches_the_webhook_with_the_rule_labels(harness) -> None:
    alerts = harness["alerts"]
    assert {a["labels"]["alertname"] for a in alerts} == {"HarnessEventsSeen"}
    a = alerts[0]
    assert a["status"] == "firing"
    assert a["labels"] == {"alertname": "HarnessEventsSeen", "job": "promdrift",
                           "severity": "warning"}
    assert a["annotations"]["summary"] == "events seen"
    assert a["annotations"]["description"].endswith(" events in the window")


def test_a_missing_engine_is_skipped_or_fails_when_required(monkeypatch) -> None:
    spec = EngineSpec("nowhere", {"prometheus": None}, remedy="fetch it",
                      servers=("prometheus",))
    assert spec.missing() == "nowhere: prometheus not found; fetch it"
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="fetch it"):
        need(spec)
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="every engine must run"):
        need(spec)


def test_a_prometheus_of_another_major_version_does_not_count() -> None:
    system = ENGINES["prometheus-2"].binaries["prometheus"]
    if system is None:
        pytest.skip("no system prometheus")
    spec = EngineSpec("p9", {"prometheus": system}, remedy="-", prometheus_major=9,
                      servers=("prometheus",))
    assert spec.missing().endswith(", not 9.x")
