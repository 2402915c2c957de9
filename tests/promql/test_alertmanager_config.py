"""promql/examples/alertmanager.yml is a valid Alertmanager configuration that routes by
severity and groups by model."""

import os
import shutil
import subprocess

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


def test_groups_by_model() -> None:
    import yaml
    with open(CONFIG) as f:
        route = yaml.safe_load(f)["route"]
    assert route["group_by"] == ["model"]
