"""promql/examples/alertmanager.yml is a valid Alertmanager configuration that groups by
model version and baseline, routes a canary's alerts to its own receiver and the others by
severity, and inhibits what the docs say it inhibits (checked on a real Alertmanager)."""

import json
import os
import shutil
import subprocess
import time
import urllib.request
from typing import Any, Dict, List

import pytest

AMTOOL = shutil.which("amtool")
CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "promql", "examples",
                      "alertmanager.yml")

pytestmark = pytest.mark.skipif(AMTOOL is None, reason="needs amtool (prometheus-alertmanager)")


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=30)


def test_amtool_check_config_accepts_the_example() -> None:
    result = amtool("check-config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_check_config_rejects_a_broken_copy(tmp_path) -> None:
    """The check above can fail: a route to an undefined receiver is refused."""
    with open(CONFIG) as f:
        text = f.read()
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(text.replace("receiver: promdrift-critical", "receiver: nobody"))
    result = amtool("check-config", str(broken))
    assert result.returncode != 0


@pytest.mark.parametrize("severity, receiver", [("critical", "promdrift-critical"),
                                                ("warning", "promdrift-warning")])
def test_routes_by_severity(severity: str, receiver: str) -> None:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}",
                    f"severity={severity}", "model=churn", "alertname=PromdriftFeatureDrift")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [receiver]


def test_a_canary_goes_to_the_team_rolling_it_out() -> None:
    for severity in ("critical", "warning"):
        result = amtool("config", "routes", "test", f"--config.file={CONFIG}",
                        f"severity={severity}", "model=churn", "model_version=4-canary",
                        "baseline=0123456789ab", "alertname=PromdriftFeatureDrift")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["promdrift-rollout"]


def test_groups_by_model_version_and_baseline() -> None:
    """One notification per version: a canary's alerts never merge into the stable
    version's."""
    import yaml
    with open(CONFIG) as f:
        route = yaml.safe_load(f)["route"]
    assert route["group_by"] == ["model", "model_version", "baseline"]


def _post_alerts(url: str, alerts: List[Dict[str, str]]) -> None:
    body = json.dumps([{"labels": a} for a in alerts]).encode()
    req = urllib.request.Request(f"{url}/api/v2/alerts", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _alerts(url: str) -> Dict[Any, List[str]]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=10) as resp:
        data = json.load(resp)
    return {(a["labels"]["alertname"], a["labels"].get("feature", ""),
             a["labels"]["baseline"]): a["status"]["inhibitedBy"] for a in data}


def test_inhibitions_on_a_real_alertmanager(tmp_path) -> None:
    """PSI is muted by KS drift of the same feature and baseline only, and the distribution
    alerts of a baseline by its instrumentation errors; another baseline of the same model (a
    canary) is not muted by them."""
    from promdrift.exporter.stack import Alertmanager, wait_until

    with open(CONFIG) as f:
        config = f.read()
    base = {"model": "churn", "severity": "warning"}
    a, b = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    with Alertmanager(str(tmp_path), "http://127.0.0.1:9/", config=config) as am:
        am.wait_ready(timeout=30)
        url = f"http://{am.address}"
        _post_alerts(url, [
            {**base, "alertname": "PromdriftFeatureDrift", "baseline": a, "feature": "age"},
            {**base, "alertname": "PromdriftFeaturePSIHigh", "baseline": a, "feature": "age"},
            {**base, "alertname": "PromdriftFeaturePSIHigh", "baseline": a, "feature": "income"},
            {**base, "alertname": "PromdriftFeaturePSIHigh", "baseline": b, "feature": "age"},
            {**base, "alertname": "PromdriftInstrumentationErrors", "baseline": b},
            {**base, "alertname": "PromdriftCategoricalDrift", "baseline": b, "feature": "plan"},
            {**base, "alertname": "PromdriftCategoricalDrift", "baseline": a, "feature": "plan"},
        ])
        got: Dict[Any, List[str]] = {}

        def settled() -> bool:
            got.update(_alerts(url))
            return len(got) == 7 and bool(got[("PromdriftFeaturePSIHigh", "age", a)])
        wait_until(settled, timeout=20, interval=0.2, what="the inhibitions")
        time.sleep(0.5)
        got = _alerts(url)
    inhibited = {k for k, by in got.items() if by}
    assert inhibited == {("PromdriftFeaturePSIHigh", "age", a),
                         ("PromdriftFeaturePSIHigh", "age", b),
                         ("PromdriftCategoricalDrift", "plan", b)}, got
