"""``promdrift trial``'s errors: each names the bad input and the fix, before anything starts
where it can; a target that is never up is named with Prometheus' scrape error; SIGTERM
stops every process the trial started. (The trial against a real model server, firing an
alert: tests/test_quickstart.py.)"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess

import pytest

from promdrift.exporter import stack, trial
from promdrift.exporter.cli import main
from promdrift.exporter.stack import free_port, http_get, wait_until

from conftest import PROMDRIFT, Output, needs_stack, stop


@pytest.mark.parametrize("target, message", [
    ("http://127.0.0.1:8000", "give HOST:PORT without a scheme or path"),
    ("127.0.0.1:8000/metrics", "the path goes into --metrics-path"),
    ("127.0.0.1", "expected HOST:PORT"),
    (":8000", "expected HOST:PORT"),
    ("127.0.0.1:http", "port 'http' is not a number from 1 to 65535"),
    ("127.0.0.1:70000", "port '70000' is not a number"),
    ("::1:8000", "an IPv6 address goes in brackets"),
])
def test_a_bad_target_is_named(target, message, capsys):
    assert main(["trial", "--target", target]) == 2
    err = capsys.readouterr().err
    assert f"--target {target!r}" in err and message in err


@pytest.mark.parametrize("args, message", [
    ([], "give at least one --target HOST:PORT"),
    (["--target", "a:1", "--target", "a:1"], "a target is given twice"),
    (["--target", "a:1", "--metrics-path", "metrics"], "--metrics-path 'metrics': must start"),
    (["--target", "a:1", "--duration", "0"], "--duration 0.0: must be a positive"),
    (["--target", "a:1", "--until-alerts", "0"], "--until-alerts 0: must be at least 1"),
    (["--target", "a:1", "--set", "min_samples=-1"], "min_samples"),
    (["--target", "a:1", "--set", "nosuch=1"], "nosuch"),
    (["--target", "a:1", "--time-scale", "0"], "time_scale: must be a positive number"),
    (["--target", "a:1", "--time-scale", "120"], "fewer than 4 scrapes"),
])
def test_a_bad_option_is_named(args, message, capsys):
    assert main(["trial", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_binary_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))          # nothing on PATH
    monkeypatch.chdir(tmp_path)                        # no .cache/engines here
    monkeypatch.setattr(stack, "_ROOT", str(tmp_path))  # nor in the source tree
    assert main(["trial", "--target", "127.0.0.1:8000"]) == 2
    err = capsys.readouterr().err
    assert "prometheus not found" in err and "apt-get install prometheus`" in err
    assert "--prometheus PATH" in err
    assert main(["trial", "--target", "127.0.0.1:8000", "--prometheus", "/bin/sh"]) == 2
    err = capsys.readouterr().err
    assert "alertmanager not found" in err
    assert "apt-get install prometheus-alertmanager" in err and "--alertmanager PATH" in err
    assert main(["trial", "--target", "127.0.0.1:8000",
                 "--prometheus", str(tmp_path / "prometheus")]) == 2
    assert f"prometheus: {tmp_path / 'prometheus'} is not an executable file" in \
        capsys.readouterr().err


def test_binaries_are_found_on_path_then_in_the_engine_cache(tmp_path, monkeypatch):
    bindir = tmp_path / stack.ENGINE_CACHE
    bindir.mkdir(parents=True)
    cached = bindir / "prometheus-alertmanager"
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    assert stack.find_binary("alertmanager") == str(cached)
    onpath = tmp_path / "empty"
    onpath.mkdir()
    (onpath / "alertmanager").write_text("#!/bin/sh\n")
    (onpath / "alertmanager").chmod(0o755)
    assert stack.find_binary("alertmanager") == str(onpath / "alertmanager")
    assert stack.find_binary("alertmanager", str(cached)) == str(cached)


def test_the_trial_rules_are_the_generated_ones_time_scaled(tmp_path):
    from promdrift.promql import RulesConfig, alerts_yaml, rules_yaml
    config = trial.trial_config(30, ["min_samples=100"])
    paths = trial.write_rules(config, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["rules.yml", "alerts.yml"]
    expected = RulesConfig(time_scale=30, thresholds={"min_samples": 100})
    with open(paths[0]) as f:
        rules = f.read()
    with open(paths[1]) as f:
        alerts = f.read()
    assert (rules, alerts) == (rules_yaml(expected), alerts_yaml(expected))
    assert "[2m]" in rules and "[1h]" not in rules     # the 1h window is 2 minutes
    assert 'for: "30s"' in alerts and "15m" not in alerts.split("\ngroups:", 1)[1]


@needs_stack
def test_a_target_that_is_never_up_is_named_with_the_scrape_error(capsys):
    port = free_port()  # nothing listens there
    assert main(["trial", "--target", f"127.0.0.1:{port}", "--up-timeout", "8"]) == 2
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{port}/metrics" in err and "connection refused" in err
    assert "Is the model server running" in err


@needs_stack
def test_sigterm_stops_every_process_the_trial_started(tmp_path):
    port = free_port()
    proc = subprocess.Popen([PROMDRIFT, "trial", "--target", f"127.0.0.1:{port}",
                             "--workdir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    output = Output(proc)
    try:
        wait_until(lambda: proc.poll() is not None or "waiting for the first scrape"
                   in output.text(), 60, what="the trial's stack")
        urls = re.findall(r"(?:Prometheus|Alertmanager) (http://127\.0\.0\.1:\d+)",
                          output.text())
        assert len(urls) == 2, output.text()
        for url in urls:
            assert http_get(url + "/-/ready")
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=60)
    finally:
        stop(proc)
        output.join()
    assert status == 130, output.text()
    assert "every process it started has been stopped" in output.text()
    for url in urls:
        with pytest.raises(OSError):
            http_get(url + "/-/ready", timeout=2)
    # --workdir keeps the generated rules and the servers' configurations and logs
    assert sorted(os.listdir(tmp_path)) == ["alertmanager", "prometheus", "rules"]


@needs_stack
def test_status_lines_keep_running_and_a_target_going_down(penguins_baseline, penguins_rows):
    """Against a real instrumented app: the targets-up and first-rule-values lines, the
    end of --duration, --keep-running, a target that goes down named with its error, and
    SIGTERM stopping everything."""
    from flask import Flask
    from prometheus_client import CollectorRegistry

    from promdrift.instrumentation import DriftMonitor

    from integration.servers import AppServer

    monitor = DriftMonitor(penguins_baseline, registry=CollectorRegistry())
    server = AppServer(monitor.instrument(Flask(__name__))).__enter__()
    proc = subprocess.Popen([PROMDRIFT, "trial", "--target", server.address,
                             "--duration", "3", "--keep-running"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    output = Output(proc)

    def printed(text):
        wait_until(lambda: proc.poll() is not None or text in output.text(), 90,
                   what=f"the trial printing {text!r}")
        assert text in output.text(), output.text()
    try:
        printed(f"targets up: {server.address}; models: penguins")
        for row in penguins_rows[:50]:  # traffic: the recording rules get values
            monitor.observe(row)
        printed("recorded series of model penguins")  # the first rule values
        printed("stopping: 0 alert(s) delivered")     # --duration 3 ended
        printed("--keep-running: the stack stays up")
        server.__exit__()  # the model server goes away: the trial says so, with the error
        printed(f"target http://{server.address}/metrics is down: ")
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=60)
    finally:
        stop(proc)
        output.join()
        with contextlib.suppress(Exception):
            server.__exit__()
        monitor.close()
    assert status == 130, output.text()
